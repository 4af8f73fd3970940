// Regenerates docs/errors.md from src/errors.ts (after `npm run build`); test/unit/errors.test.ts
// fails when the two differ.
import { writeFileSync } from 'node:fs';
const { Catalog } = await import('../dist/src/errors.js');
let out = `# Errors

Every failure the router answers (or records) is one entry of the catalogue in \`src/errors.ts\`;
this page lists exactly those entries (a test keeps them identical). Clients and dashboards match
on \`code\`; codes are never reused once retired.

Bodies are OpenAI-shaped and keep Kthena's message text:

\`\`\`json
{"error":{"message":"route not found","type":"not_found_error","code":"RTR_ERR_NO_ROUTE"}}
\`\`\`

Kthena answers a bare JSON string (\`"route not found"\`); see [compat.md](compat.md). The access log
writes \`error=<kthena type>:<message>\` and the \`kthena_router_requests_total\` metric carries the
same \`error_type\`. Status \`-\` means nothing can be answered (the client is gone, or the router
refuses to start). Whatever happens, the router keeps serving other requests.

| code | status | type | error_type | message | when |
|---|---|---|---|---|---|
`;
for (const e of Object.values(Catalog)) {
  out += `| \`${e.code}\` | ${e.status === 0 ? '-' : e.status} | \`${e.type}\` | \`${e.kthenaType}\` | \`${e.message}\` | ${e.description} |\n`;
}
writeFileSync(new URL('../docs/errors.md', import.meta.url), out);
