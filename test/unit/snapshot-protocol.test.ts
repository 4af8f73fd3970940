import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { Publisher, SlotAllocator } from '../../src/publish/publisher.js';
import { SnapshotReader } from '../../workers/snapshot-reader.js';
import { encodeSnapshot, decodeSnapshot } from '../../src/shared/snapshot-codec.js';
import { allocateRegions, epIndex, kEpInflight, kHdrGeneration, kHdrSnapLen0, snapshotHalfBytes } from '../../src/shared/layout.js';
import type { RoutingIR } from '../../src/ir/types.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import { emptyGatewayIR } from '../../src/ir/gateway.js';

function irWith(n: number, tag = 'r'): RoutingIR {
  return {
    routes: Array.from({ length: n }, (_, i) => ({
      key: `ns/${tag}${i}`, namespace: 'ns', name: `${tag}${i}`, modelName: `m${i}`, loraAdapters: i % 2 ? ['lora'] : [], hasParentRefs: false,
      rules: [{ name: 'r', match: { headers: [{ name: 'x-a', type: 'prefix' as const, value: 'p' }], uri: null, bodyModel: null }, targets: [{ kind: 'server' as const, key: 'ns/s', server: 0, weight: 100 }], totalWeight: 100 }],
      rateLimit: null,
    })),
    servers: [{ key: 'ns/s', namespace: 'ns', name: 's', model: '', engine: 'vLLM', port: 8000, timeoutMs: 0, retryAttempts: -1, retryIntervalMs: 0, endpoints: [0], unsupported: '', pdGroups: [{ name: 'g0', decode: [0], prefill: [] }], connector: 'nixl' }],
    endpoints: [{ key: 'ns/p', namespace: 'ns', name: 'p', ip: '127.0.0.2', slot: 0, gen: 1, startedAtSec: 1700000000 }],
    scheduler: DEFAULT_SCHEDULER,
    modelNames: ['lora', ...Array.from({ length: n }, (_, i) => `m${i}`)].sort(),
    modelIds: [],
    gateway: emptyGatewayIR(),
  };
}

describe('snapshot codec', () => {
  it('round-trips the IR exactly', () => {
    const ir = irWith(3);
    ir.routes[0].rules[0].match = null;
    ir.routes[1].rules[0].match = { headers: [], uri: { type: 'regex', value: '^/v1/' }, bodyModel: 'm1' };
    expect(decodeSnapshot(encodeSnapshot(ir))).toEqual(ir);
    ir.routes[1].rateLimit = {
      inputTokensPerUnit: 30, outputTokensPerUnit: 0, unitSeconds: 60, redisAddress: '',
      buckets: [{ model: 'm1', direction: 'input', slot: 4, gen: 2 }, { model: 'lora', direction: 'output', slot: 5, gen: 1 }],
    };
    ir.routes[2].rateLimit = { inputTokensPerUnit: 0, outputTokensPerUnit: 5000, unitSeconds: 2_592_000, redisAddress: 'redis:6379', buckets: [] };
    ir.auth = { issuer: 'https://idp', audiences: ['a', 'b'], jwksUri: 'https://idp/jwks' };
    expect(decodeSnapshot(encodeSnapshot(ir))).toEqual(ir);
    ir.gateway = {
      ...ir.gateway,
      ports: [{ port: 9001, protocol: 'HTTP', exact: [['a.example.com', 0]], wildcard: [], any: -1 }],
      endpoints: [{ key: 'ns/p:8000', namespace: 'ns', pod: 'p', ip: '127.0.0.2', port: 8000, slot: 3, gen: 2, startedAtSec: 5 }],
    };
    expect(decodeSnapshot(encodeSnapshot(ir))).toEqual(ir);
  });
});

describe('snapshot double buffer', () => {
  it('a reader keeps the old snapshot while the writer is halfway through', () => {
    const regions = allocateRegions(64, 1 << 16);
    const pub = new Publisher(regions);
    const reader = new SnapshotReader(regions.headerSab, regions.snapshotSab, (ir) => ir.routes.length, () => undefined);
    expect(reader.current()).toBeNull();
    expect(pub.publish(irWith(1))).toBe('published');
    expect(reader.current()).toBe(1);

    // Writer steps 1-3 of the protocol for generation 2, without the release store.
    const header = new Int32Array(regions.headerSab);
    const g = Atomics.load(header, kHdrGeneration);
    const half = (g + 1) & 1;
    const bytes = encodeSnapshot(irWith(5));
    new Uint8Array(regions.snapshotSab, half * snapshotHalfBytes(regions.snapshotSab), bytes.length).set(bytes);
    Atomics.store(header, kHdrSnapLen0 + half, bytes.length);
    expect(reader.current()).toBe(1);
    Atomics.store(header, kHdrGeneration, g + 1);
    expect(reader.current()).toBe(5);
  });

  it('publishes nothing for an IR deep-equal to the last one', () => {
    const pub = new Publisher(allocateRegions(64, 1 << 16));
    expect(pub.publish(irWith(2))).toBe('published');
    expect(pub.publish(irWith(2))).toBe('unchanged');
    expect(pub.generation).toBe(1);
  });

  it('refuses a snapshot larger than a half', () => {
    const pub = new Publisher(allocateRegions(64, 256));
    expect(pub.publish(irWith(50))).toBe('too-large');
    expect(pub.generation).toBe(0);
  });

  it('readers on another thread never observe a torn snapshot while the writer publishes continuously', async () => {
    const regions = allocateRegions(64, 1 << 16);
    const pub = new Publisher(regions);
    pub.publish(irWith(1, 'a'));
    const readerModule = path.resolve('dist/workers/snapshot-reader.js');
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(${JSON.stringify(readerModule)}).then(({ SnapshotReader }) => {
        let errors = 0, seen = 0, bad = 0;
        const r = new SnapshotReader(workerData.headerSab, workerData.snapshotSab, (ir) => {
          // Every published IR has routes whose names all share one tag and count = number.
          const tag = ir.routes[0].name[0];
          if (!ir.routes.every((x, i) => x.name === tag + i)) bad++;
          return ir.routes.length;
        }, () => errors++);
        const end = Date.now() + 400;
        while (Date.now() < end) { if (r.current() !== null) seen++; }
        parentPort.postMessage({ errors, bad, seen, gen: r.generation });
      });`;
    const w = new Worker(code, { eval: true, workerData: regions });
    const result = new Promise<{ errors: number; bad: number; seen: number; gen: number }>((resolve) => w.once('message', resolve));
    let n = 0;
    const end = Date.now() + 400;
    // At least 200 publications however slow a shared machine is (a time bound alone made the
    // count depend on load); the reader is busy-reading all the while.
    while (Date.now() < end || n < 200) {
      pub.publish(irWith(1 + (n % 40), n % 2 ? 'a' : 'b'));
      n++;
      if (n % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    const r = await result;
    await w.terminate();
    expect(r.seen).toBeGreaterThan(0);
    expect(r.errors).toBe(0);
    expect(r.bad).toBe(0);
  });
});

describe('SlotAllocator', () => {
  it('keeps a pod on the same slot across snapshots', () => {
    const regions = allocateRegions(8, 1024);
    const a = new SlotAllocator(regions.endpointSab);
    const s1 = a.assign(['ns/a', 'ns/b'])!;
    const s2 = a.assign(['ns/c', 'ns/b', 'ns/a'])!;
    expect(s2.get('ns/a')).toBe(s1.get('ns/a'));
    expect(s2.get('ns/b')).toBe(s1.get('ns/b'));
  });

  it('reuses a freed slot only after its in-flight count returned to zero', () => {
    const regions = allocateRegions(2, 1024);
    const ep = new Int32Array(regions.endpointSab);
    const a = new SlotAllocator(regions.endpointSab);
    const s1 = a.assign(['ns/a', 'ns/b'])!;
    Atomics.add(ep, epIndex(s1.get('ns/a')!, kEpInflight), 1);
    expect(a.assign(['ns/b', 'ns/c'])).toBeNull(); // capacity 2, slot of a still busy
    Atomics.sub(ep, epIndex(s1.get('ns/a')!, kEpInflight), 1);
    const s3 = a.assign(['ns/b', 'ns/c'])!;
    expect(s3.get('ns/c')).toBe(s1.get('ns/a'));
    expect(Atomics.load(ep, epIndex(s3.get('ns/c')!, kEpInflight))).toBe(0);
  });
});
