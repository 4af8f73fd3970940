/**
 * Kthena's prompt extraction and input-token estimate (docs/reference/kthena-behaviour.md §2.2 steps 7-8): the text prompt,
 * or the ChatML rendering of messages/input, and ceil(runes / 4).
 */

function partsText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  let out = '';
  let any = false;
  for (const p of content) {
    if (p === null || typeof p !== 'object') continue;
    const part = p as { type?: unknown; text?: unknown };
    const t = part.type;
    if ((t === undefined || t === 'text' || t === 'input_text' || t === 'output_text') && typeof part.text === 'string') {
      out += any ? '\n' + part.text : part.text;
      any = true;
    }
  }
  return any ? out : null;
}

function chatml(role: string, content: string): string {
  return '<|im_start|>' + role + '\n' + content + '<|im_end|>\n';
}

/** The prompt string Kthena estimates tokens from (and later hashes), or null: "prompt not found". */
export function extractPrompt(body: Record<string, unknown>): string | null {
  if ('prompt' in body) return typeof body.prompt === 'string' ? body.prompt : null;
  if ('messages' in body) {
    const msgs = body.messages;
    if (!Array.isArray(msgs)) return null;
    let out = '';
    const sys = body.system;
    if (sys !== undefined) {
      const t = partsText(sys);
      if (t !== null) out += chatml('system', t);
    }
    for (const m of msgs) {
      if (m === null || typeof m !== 'object') continue;
      const msg = m as { role?: unknown; content?: unknown };
      if (typeof msg.role !== 'string') continue;
      const t = partsText(msg.content);
      if (t === null) continue;
      out += chatml(msg.role, t);
    }
    return out;
  }
  if ('input' in body) {
    let out = '';
    if (typeof body.instructions === 'string') out += chatml('developer', body.instructions);
    const input = body.input;
    if (typeof input === 'string') return out + chatml('user', input);
    if (!Array.isArray(input)) return null;
    for (const it of input) {
      if (it === null || typeof it !== 'object') continue;
      const item = it as { type?: unknown; role?: unknown; content?: unknown };
      if (item.type !== undefined && item.type !== 'message') continue;
      if (typeof item.role !== 'string') continue;
      const t = partsText(item.content);
      if (t === null) continue;
      out += chatml(item.role, t);
    }
    return out;
  }
  return null;
}

/** ceil(utf8RuneCount / 4): UTF-16 length minus the second unit of each surrogate pair. */
export function estimateTokens(prompt: string): number {
  let runes = prompt.length;
  for (let i = 0; i < prompt.length; i++) {
    const c = prompt.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) { runes--; i++; }
  }
  return Math.ceil(runes / 4);
}
