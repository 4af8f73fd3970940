/**
 * `kthena-router [serve|demo|sim|version] [flags]` (no command: serve). Exit codes: 0 clean stop, 1 runtime failure (a port
 * cannot be bound, the native uWS binary is missing), 2 invalid flags or environment.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, FLAGS, loadConfig, type FlagSpec, type RouterConfig } from './config.js';
import { RouterError } from './errors.js';
import { runRouter } from './control.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function usage(): string {
  const flags = (origin: FlagSpec['origin']): string[] => Object.entries(FLAGS).filter(([, f]) => f.origin === origin)
    .map(([name, f]) => `  --${name.padEnd(42)} ${f.help}`);
  return [
    'Usage: kthena-router [command] [flags]',
    '',
    'Commands:',
    '  serve    (the default: flags alone, as Kthena\'s image is started) route OpenAI-compatible traffic by',
    '           the manifests in --config DIR, or by the Kubernetes API (--kubeconfig FILE; in a pod without',
    '           --config: the service account)',
    '  demo     start simulated engine pods on loopback and the router on :8080 (examples/)',
    '  sim      start simulated engine pods only (see --help of sim)',
    '  version  print the version',
    '',
    'Flags take --name=value or --name value; booleans --flag or --flag=true|false.',
    '',
    'Kthena\'s flags:',
    ...flags('kthena'),
    '',
    'klog\'s flags (Kthena\'s binary registers them; -v N is --v=N):',
    ...flags('klog'),
    '',
    'This router\'s flags (serve, demo):',
    ...flags('ours'),
    '',
    'Environment:',
    ...ENV.map((e) => `  ${e.name.padEnd(44)} ${e.help}`),
  ].join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function config(command: RouterConfig['command'], argv: string[]): Readonly<RouterConfig> | null {
  try {
    return loadConfig(command, argv);
  } catch (err) {
    if ((err as RouterError).code === 'RTR_ERR_CONFIG_INVALID') {
      process.stderr.write(`kthena-router: ${(err as Error).message}\n`);
      return null;
    }
    throw err;
  }
}

export async function main(argv: string[]): Promise<number> {
  // Kthena's image runs its binary with flags and no command (its chart's `args:` replace our
  // `CMD ["serve"]`): flags alone, or nothing at all, mean serve.
  const implicit = argv.length === 0 || (argv[0]!.startsWith('-') && !['--help', '-h', '--version'].includes(argv[0]!));
  const [command, ...rest] = implicit ? ['serve', ...argv] : argv;
  // `sim` has its own options and help text.
  if (command === '--help' || command === '-h' || command === 'help' || (command !== 'sim' && (rest.includes('--help') || rest.includes('-h')))) {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  switch (command) {
    case 'version':
    case '--version':
      process.stdout.write(version() + '\n');
      return 0;
    case 'serve': {
      const cfg = config('serve', rest);
      if (cfg === null) return 2;
      return runRouter(cfg);
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      const hasConfig = rest.some((a) => a === '--config' || a.startsWith('--config='));
      const cfg = config('demo', hasConfig ? rest : ['--config', path.join(root, 'examples'), ...rest]);
      if (cfg === null) return 2;
      return runDemo(cfg, root);
    }
    case 'sim': {
      const { runSimCommand } = await import('../native-bench/src/sim/cli.js');
      try {
        const fleet = await runSimCommand(rest);
        if (fleet === null) return 0;
        // The fleet serves until SIGINT/SIGTERM (runSimCommand exits the process then).
        return await new Promise<number>(() => undefined);
      } catch (err) {
        if (err instanceof TypeError) { process.stderr.write(`kthena-router sim: ${err.message}\n`); return 2; }
        throw err;
      }
    }
    default:
      process.stderr.write(`kthena-router: unknown command "${command}"\n\n${usage()}\n`);
      return 2;
  }
}
