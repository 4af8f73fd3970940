/**
 * Golden tests for the Gateway translator: testdata/<case>.in.yaml (manifests; an optional first line
 * `# options: {json}` overrides translator options) -> testdata/<case>.out.json
 * ({ ir, statuses, problems, bootstrap }). `UPDATE_GOLDEN=1 npx vitest run test/translator/gateway`
 * rewrites the outputs; review the diff by eye.
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { loadManifests } from '../../helpers/gateway.js';
import { translateGateway, validateGatewayIR, type GatewayTranslateOptions } from '../../../src/translator/gateway/index.js';
import type { GatewayIR } from '../../../src/ir/gateway.js';
import type { ResourceSet } from '../../../src/resources/types.js';

const testdata = fileURLToPath(new URL('./testdata/', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

export const DEFAULT_OPTIONS: GatewayTranslateOptions = {
  enableGatewayApi: true, enableInferenceExtension: true, podNamespace: 'kthena-system', defaultPort: 8080,
};

function load(name: string): { rs: ResourceSet; opts: GatewayTranslateOptions } {
  const text = readFileSync(path.join(testdata, `${name}.in.yaml`), 'utf8');
  const m = /^# options: (\{.*\})\n/.exec(text);
  return { rs: loadManifests(text, `${name}.in.yaml`), opts: { ...DEFAULT_OPTIONS, ...(m ? JSON.parse(m[1]!) as Partial<GatewayTranslateOptions> : {}) } };
}

function isDeepFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(isDeepFrozen);
}

function reversed(rs: ResourceSet): ResourceSet {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rs)) out[k] = [...(v as unknown[])].reverse();
  return out as unknown as ResourceSet;
}

const cases = readdirSync(testdata).filter((f) => f.endsWith('.in.yaml')).map((f) => f.slice(0, -'.in.yaml'.length)).sort();

describe('gateway translator golden files', () => {
  it('has the cases the brief asks for', () => {
    for (const c of ['matching-across-routes', 'precedence', 'hostnames', 'reference-grant', 'inference-pool', 'invalid-objects', 'filters', 'modelroute-binding', 'disabled', 'no-inference-extension']) {
      expect(cases).toContain(c);
    }
  });

  for (const name of cases) {
    it(`translates ${name}`, () => {
      const { rs, opts } = load(name);
      const out = translateGateway(rs, opts);
      const json = `${JSON.stringify(out, null, 2)}\n`;
      const golden = path.join(testdata, `${name}.out.json`);
      if (update) writeFileSync(golden, json);
      expect(existsSync(golden), `${golden} missing: run with UPDATE_GOLDEN=1`).toBe(true);
      expect(json).toBe(readFileSync(golden, 'utf8'));
      expect(validateGatewayIR(out.ir)).toEqual([]);
      expect(isDeepFrozen(out.ir)).toBe(true);
      expect(isDeepFrozen(out.statuses)).toBe(true);
    });

    it(`translates ${name} the same whatever the input order, and purely`, () => {
      const { rs, opts } = load(name);
      const before = JSON.stringify(rs);
      expect(JSON.stringify(translateGateway(reversed(rs), opts))).toBe(JSON.stringify(translateGateway(rs, opts)));
      expect(JSON.stringify(rs)).toBe(before);
    });
  }
});

describe('validateGatewayIR', () => {
  it('gathers every structural problem instead of stopping at the first', () => {
    const { rs, opts } = load('inference-pool');
    const ir = structuredClone(translateGateway(rs, opts).ir) as GatewayIR;
    ir.rules[0]!.backends[0]!.weight = 5;
    ir.rules[0]!.backends[1]!.pool = 9;
    ir.pools[0]!.endpoints = [3, 1];
    ir.endpoints[0]!.ip = 'nope';
    ir.listeners[1]!.entries.reverse();
    ir.listeners[1]!.entries[0]!.path = '(';
    ir.listeners[1]!.entries[0]!.pathType = 'RegularExpression';
    ir.ports[1]!.any = 7;
    expect(validateGatewayIR(ir)).toEqual([
      'endpoints[0] (app/a-0:8000): ip "nope" is not an IP address',
      'pools[0] (app/pool-a).endpoints must be strictly ascending',
      'rules[0].backends[1] (app/pool-b): pool 9 does not name app/pool-b',
      'rules[0]: totalWeight 100 is not the sum of the weights (35)',
      'listeners[1] (infra/primary/http).entries[0]: regex "(" does not compile',
      'listeners[1] (infra/primary/http).entries[2]: entries are not in precedence order',
      'listeners[1] (infra/primary/http).entries[3]: entries are not in precedence order',
      'ports[1] (8084): listener 7 is out of range',
    ]);
  });
});
