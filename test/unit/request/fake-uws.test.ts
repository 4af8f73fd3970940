import { describe, expect, it } from 'vitest';
import { FakeResponse, NativeRuleViolation, serve } from '../../helpers/fake-uws.js';

describe('fake uWS pair (the native rules the stage tests rely on)', () => {
  it('rejects use of req after the handler returned', () => {
    let kept: { getUrl(): string } | null = null;
    serve((res, req) => { kept = req; res.end(); }, 'GET', '/x');
    expect(() => kept!.getUrl()).toThrow(NativeRuleViolation);
  });

  it('rejects a handler that returns without responding or attaching onAborted', () => {
    expect(() => serve(() => undefined, 'GET', '/x')).toThrow(NativeRuleViolation);
    expect(() => serve((res) => { res.onAborted(() => undefined); }, 'GET', '/x')).not.toThrow();
  });

  it('rejects writes after end, close or abort, and writeStatus after a header', () => {
    const a = new FakeResponse();
    a.end('x');
    expect(() => a.write('y')).toThrow(NativeRuleViolation);
    const b = new FakeResponse();
    b.onAborted(() => undefined);
    b.abort();
    expect(() => b.cork(() => undefined)).toThrow(NativeRuleViolation);
    const c = new FakeResponse();
    c.writeHeader('a', 'b');
    expect(() => c.writeStatus('200 OK')).toThrow(NativeRuleViolation);
  });

  it('neuters the onData ArrayBuffer after the callback and counts uncorked writes outside callbacks', () => {
    const res = new FakeResponse();
    let seen: ArrayBuffer | null = null;
    res.onData((ab) => { seen = ab; });
    res.data('abc', true);
    expect(seen!.byteLength).toBe(0);
    res.write('x');
    expect(res.uncorkedWrites).toBe(1);
    res.cork(() => { res.write('y'); });
    expect(res.uncorkedWrites).toBe(1);
  });
});
