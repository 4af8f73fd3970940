import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { Catalog, RouterError, errorBody, type ErrorCode } from '../../src/errors.js';

const codes = Object.keys(Catalog) as ErrorCode[];

describe('error catalogue', () => {
  it.each(codes)('%s carries its code, status, type and default message', (code) => {
    const e = Catalog[code];
    const err = new RouterError(code, 'detail');
    expect(err.name).toBe('RouterError');
    expect(err.code).toBe(code);
    expect(e.code).toBe(code);
    expect(err.status).toBe(e.status);
    expect(err.type).toBe(e.type);
    expect(err.message).toBe(e.message.includes('%s') ? e.message.replace('%s', 'detail') : e.message);
    const body = JSON.parse(errorBody(code, err.message));
    expect(body).toEqual({ error: { message: err.message, type: e.type, code } });
  });

  it('survives structured cloning by code, not by class', () => {
    const cloned = structuredClone(new RouterError('RTR_ERR_NO_ROUTE'));
    expect(cloned).not.toBeInstanceOf(RouterError);
    expect((cloned as { message: string }).message).toBe('route not found');
  });

  it('codes are unique and follow the RTR_ERR_ naming', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^RTR_ERR_[A-Z0-9_]+$/);
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\|\s*`(RTR_ERR_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (m) rows.set(m[1], m[2].split('|').map((c) => c.trim()));
  }

  it('documents every catalogue entry with its status, type and message', () => {
    for (const code of codes) {
      const row = rows.get(code);
      expect(row, `${code} missing from docs/errors.md`).toBeDefined();
      const e = Catalog[code];
      expect(row![0]).toBe(e.status === 0 ? '-' : String(e.status));
      expect(row![1]).toBe(`\`${e.type}\``);
      expect(row![2]).toBe(`\`${e.kthenaType}\``);
      expect(row![3]).toBe(`\`${e.message}\``);
    }
  });

  it('documents nothing that is not in the catalogue', () => {
    for (const code of rows.keys()) expect(codes, `${code} is documented but not in src/errors.ts`).toContain(code);
  });
});
