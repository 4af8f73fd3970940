/**
 * Every golden IR of the translators survives the snapshot wire format unchanged: what the control
 * thread publishes is exactly what a worker decodes (test/translator/testdata for the routing IR,
 * test/translator/gateway/testdata for the Gateway IR, carried inside an otherwise empty snapshot).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { decodeSnapshot, encodeSnapshot } from '../../src/shared/snapshot-codec.js';
import { emptyGatewayIR, type GatewayIR } from '../../src/ir/gateway.js';
import type { RoutingIR } from '../../src/ir/types.js';
import { ROUTER_DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';

const dirs = ['../translator/testdata', '../translator/gateway/testdata'].map((d) => fileURLToPath(new URL(`${d}/`, import.meta.url)));
const goldens = dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.out.json')).sort().map((f) => path.join(d, f)));

function asRoutingIR(ir: RoutingIR | GatewayIR): RoutingIR {
  if ('routes' in ir && 'servers' in ir) return ir;
  return { routes: [], servers: [], endpoints: [], scheduler: ROUTER_DEFAULT_SCHEDULER, modelNames: [], modelIds: [], gateway: ir as GatewayIR };
}

/** As JSON would carry it: the codec need not preserve undefined-valued optional fields. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('golden IRs through the snapshot codec', () => {
  it('finds both golden sets', () => {
    expect(goldens.some((g) => g.includes(`${path.sep}gateway${path.sep}`))).toBe(true);
    expect(goldens.filter((g) => !g.includes(`${path.sep}gateway${path.sep}`)).length).toBeGreaterThan(3);
  });

  for (const file of goldens) {
    it(`${path.basename(path.dirname(path.dirname(file)))}/${path.basename(file)} decodes to the IR it encoded`, () => {
      const ir = asRoutingIR((JSON.parse(readFileSync(file, 'utf8')) as { ir: RoutingIR | GatewayIR }).ir);
      expect(plain(decodeSnapshot(encodeSnapshot(ir)))).toEqual(plain(ir));
    });
  }

  it('decodes a snapshot without Gateway IR to the empty one', () => {
    const ir = asRoutingIR(emptyGatewayIR());
    expect(decodeSnapshot(encodeSnapshot(ir)).gateway).toEqual(emptyGatewayIR());
  });
});
