// What loading the daemon's code brings into memory: the npm undici (the
// registry client) only at the first pull, and never Node's own bundled
// undici, which an ESM import of node:http loads for its lazy fetch and
// WebSocket exports (1.5 MiB or more of an idle daemon).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DAEMON = fileURLToPath(new URL('../../../src/daemon.ts', import.meta.url));

test('loading the daemon loads neither undici', () => {
  const script = `await import(${JSON.stringify(DAEMON)});
const builtins = process.moduleLoadList.filter((m) => /undici/.test(m));
const npm = Object.keys((await import('node:module')).default._cache ?? {}).filter((f) => f.includes('/node_modules/undici/'));
console.log(JSON.stringify({ builtins, npm }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), { builtins: [], npm: [] });
});
