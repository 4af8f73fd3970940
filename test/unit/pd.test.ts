import { describe, expect, it } from 'vitest';
import {
  bootstrapRoom, decodeBase, editMembers, kvTransferParamsOf, lmcachePrefillParams, NIXL_PREFILL_PARAMS, prefillBase, sglangMembers, withMembers,
} from '../../workers/pd.js';

describe('editMembers', () => {
  const cases: [string, string[], [string, string][], Record<string, unknown>][] = [
    ['{"a":1,"stream":true,"b":2}', ['stream'], [], { a: 1, b: 2 }],
    ['{"stream":true,"a":1}', ['stream'], [], { a: 1 }],
    ['{"a":1,"stream":true}', ['stream'], [], { a: 1 }],
    ['{"stream":true}', ['stream'], [], {}],
    ['{"stream":true,"stream_options":{"include_usage":true}}', ['stream', 'stream_options'], [], {}],
    ['{"stream":true,"stream_options":{},"a":[1,{"b":"}"}]}', ['stream', 'stream_options'], [], { a: [1, { b: '}' }] }],
    ['{"a":1,"stream":true,"stream_options":{}}', ['stream', 'stream_options'], [], { a: 1 }],
    [' { "stream" : true ,\n "a" : "x,y" } ', ['stream'], [], { a: 'x,y' }],
    ['{"max_tokens":300,"a":1}', [], [['max_tokens', '1']], { max_tokens: 1, a: 1 }],
    ['{"a":1}', [], [['max_tokens', '1']], { a: 1, max_tokens: 1 }],
    ['{}', [], [['max_tokens', '1']], { max_tokens: 1 }],
    ['{"stream":true}', ['stream'], [['max_tokens', '1']], { max_tokens: 1 }],
  ];
  it.each(cases)('%s: removes %j and sets %j, leaving valid JSON', (text, remove, set, want) => {
    const out = editMembers(text, remove, set);
    expect(JSON.parse(out)).toEqual(want);
  });

  it('keeps the client text of untouched members byte for byte (big integers, key order)', () => {
    const text = '{"seed":12345678901234567890,"stream":true,"model":"m","messages":[{"role":"user","content":"hi"}]}';
    expect(editMembers(text, ['stream'], [['max_tokens', '1']])).toBe('{"seed":12345678901234567890,"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}');
  });
});

describe('prefill and decode bodies (Kthena §4.2)', () => {
  const upstream = '{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"messages":[{"role":"user","content":"hello"}]}';

  it('prefill: no stream or stream_options, max_tokens 1', () => {
    const p = JSON.parse(prefillBase(upstream, false, 'http')) as Record<string, unknown>;
    expect(p).toEqual({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'hello' }] });
  });

  it('prefill: max_completion_tokens becomes 1 only when the client sent it', () => {
    const text = '{"model":"m","max_completion_tokens":50,"prompt":"x"}';
    expect(JSON.parse(prefillBase(text, true, 'http'))).toEqual({ model: 'm', max_completion_tokens: 1, prompt: 'x', max_tokens: 1 });
    expect(JSON.parse(prefillBase('{"model":"m","prompt":"x"}', false, 'http'))).toEqual({ model: 'm', prompt: 'x', max_tokens: 1 });
  });

  it('a client kv_transfer_params or bootstrap_room is replaced by the connector, not duplicated', () => {
    const text = '{"model":"m","kv_transfer_params":{"evil":1},"bootstrap_room":5,"prompt":"x"}';
    const nixl = withMembers(prefillBase(text, false, 'nixl'), NIXL_PREFILL_PARAMS);
    expect(JSON.parse(nixl)).toEqual({ model: 'm', bootstrap_room: 5, prompt: 'x', max_tokens: 1, kv_transfer_params: { do_remote_decode: true, do_remote_prefill: false } });
    expect(nixl.match(/kv_transfer_params/g)).toHaveLength(1);
    const sg = withMembers(decodeBase(text, 'sglang'), sglangMembers('42', '10.0.0.7', true));
    expect(JSON.parse(sg)).toEqual({ model: 'm', kv_transfer_params: { evil: 1 }, prompt: 'x', bootstrap_room: 42, bootstrap_host: '10.0.0.7' });
  });

  it('decode: the upstream body unchanged for http', () => {
    expect(decodeBase(upstream, 'http')).toBe(upstream);
  });

  it('withMembers appends to empty and non-empty objects', () => {
    expect(JSON.parse(withMembers('{}', '"a":1'))).toEqual({ a: 1 });
    expect(JSON.parse(withMembers('{"b":2} ', '"a":1'))).toEqual({ b: 2, a: 1 });
  });
});

describe('connector members', () => {
  it('kv_transfer_params of a prefill answer pass verbatim, null when absent or unparsable', () => {
    const body = '{"id":"x","kv_transfer_params":{"remote_block_ids":[1,2],"remote_engine_id":"e","big":123456789012345678901},"choices":[]}';
    expect(kvTransferParamsOf(body)).toBe('{"remote_block_ids":[1,2],"remote_engine_id":"e","big":123456789012345678901}');
    expect(kvTransferParamsOf('{"id":"x"}')).toBe('null');
    expect(kvTransferParamsOf('not json')).toBe('null');
    expect(kvTransferParamsOf('[1]')).toBe('null');
    expect(kvTransferParamsOf('')).toBe('null');
  });

  it('LMCache prefill carries disagg_spec naming the decode pod and its receiver ports', () => {
    const v = JSON.parse('{' + lmcachePrefillParams('req-1', '10.1.2.3', { init: [7300, 7301], alloc: [7400, 7401] }) + '}') as unknown;
    expect(v).toEqual({
      kv_transfer_params: { disagg_spec: { req_id: 'req-1', receiver_host: '10.1.2.3', receiver_init_port: [7300, 7301], receiver_alloc_port: [7400, 7401] } },
    });
  });

  it('bootstrap rooms are distinct non-negative 63-bit integers', () => {
    const rooms = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const r = bootstrapRoom();
      expect(r).toMatch(/^\d+$/);
      expect(BigInt(r) >= 0n && BigInt(r) < 2n ** 63n).toBe(true);
      rooms.add(r);
    }
    expect(rooms.size).toBe(1000);
  });

  it('sglang: the prefill leg carries the room, the decode leg the room and the prefill host', () => {
    expect(JSON.parse('{' + sglangMembers('7', '127.0.0.9', false) + '}')).toEqual({ bootstrap_room: 7 });
    expect(JSON.parse('{' + sglangMembers('7', '127.0.0.9', true) + '}')).toEqual({ bootstrap_room: 7, bootstrap_host: '127.0.0.9' });
  });
});
