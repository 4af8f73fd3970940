/**
 * `kthena-router demo`: simulated engine pods on loopback (examples/demo-fleet.json, matching the
 * Pod manifests in examples/) plus the router serving examples/, and a curl line that works. The
 * pods run native-bench's engine model (continuous batching, prefix cache, KV capacity, vLLM's
 * metrics; `podDefaults.model` in the fleet file), so a first request already goes through the
 * same realistic engine the benchmarks use.
 */
import path from 'node:path';
import type { RouterConfig } from './config.js';
import { ControlPlane } from './control.js';
import { startSimulatedPods } from '../native-bench/src/sim/engine.js';
import { loadFleetFile } from '../native-bench/src/sim/cli.js';

export async function runDemo(cfg: Readonly<RouterConfig>, root: string): Promise<number> {
  const fleet = await startSimulatedPods(await loadFleetFile(path.join(root, 'examples', 'demo-fleet.json')));
  const cp = new ControlPlane(cfg);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void cp.stop().then(() => fleet.close());
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await cp.start();
  } catch (err) {
    cp.log.fatal({}, (err as Error).message);
    await fleet.close();
    return cp.stopped;
  }
  await cp.ready;
  const host = cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host;
  const pods = fleet.pods.map((p) => `${p.name}@${p.ip}:${p.port}`).join(', ');
  process.stderr.write([
    '',
    `kthena-router demo: ${fleet.pods.length} simulated vLLM pods with an engine model (${pods}); GET <pod>/sim/state shows one`,
    `router on http://${host}:${cfg.port}, metrics on :${cfg.metricsPort}/metrics, debug on 127.0.0.1:${cfg.debugPort}/debug/config_dump/modelroutes`,
    'Try:',
    `  curl -s http://${host}:${cfg.port}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"deepseek-r1","messages":[{"role":"user","content":"Hello!"}]}'`,
    `  curl -sN http://${host}:${cfg.port}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"deepseek-r1","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'`,
    'Ctrl-C stops everything.',
    '',
  ].join('\n'));
  const code = await cp.stopped;
  await fleet.close();
  return code;
}
