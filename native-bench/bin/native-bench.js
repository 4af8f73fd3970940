#!/usr/bin/env node
// native-bench: the LLM load generator (and, later, comparisons). The code is TypeScript compiled
// into dist/ by `npm run build`; this file only finds it and runs it.
const CLI = new URL('../../dist/native-bench/src/cli.js', import.meta.url);

import(CLI.href).then(
  (m) => {
    // Interrupted (SIGTERM, SIGINT, SIGHUP) or not, the routers and servers a command started stop with it.
    m.reapChildrenOnExit();
    return m.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
  },
  (err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/native-bench/src/cli.js')) {
      console.error(`native-bench: ${CLI.pathname} is missing: run npm run build first`);
    } else {
      console.error(err && err.stack ? err.stack : String(err));
    }
    process.exitCode = 1;
  },
);
