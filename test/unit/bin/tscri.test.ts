// bin/tscri starts the daemon as the tests and the benchmark do, and with
// Node's compile cache: a second start does not load the TypeScript stripper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_ENV, NODE_FLAGS } from '../../helpers/daemon.ts';

const SCRIPT = fileURLToPath(new URL('../../../bin/tscri', import.meta.url));

test('bin/tscri runs node with the flags and compile cache the test daemons use', async () => {
  const text = await readFile(SCRIPT, 'utf8');
  const exec = text.split('\n').find((l) => l.startsWith('exec '));
  assert.equal(exec, `exec "$node" ${NODE_FLAGS.join(' ')} "$top/src/cli.ts" "$@"`);
  assert.match(text, /export NODE_COMPILE_CACHE="\$\{NODE_COMPILE_CACHE:-\$top\/\.cache\/node-compile-cache\}"/);
  assert.equal(NODE_ENV.NODE_COMPILE_CACHE, fileURLToPath(new URL('../../../.cache/node-compile-cache', import.meta.url)));
});

test('a start that finds its compile cache does not load the TypeScript stripper', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-compile-cache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Reports at exit whether Node loaded its TypeScript stripper (amaro) in this process.
  const probe = join(dir, 'probe.mjs');
  await writeFile(
    probe,
    `process.on('exit', () => process.stderr.write('stripper loaded: ' + process.moduleLoadList.some((m) => m.includes('amaro')) + '\\n'));\n`,
  );
  const run = () =>
    spawnSync('sh', [SCRIPT, 'version'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_COMPILE_CACHE: join(dir, 'cache'), NODE_OPTIONS: `--import ${probe}` },
    });
  const first = run();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /^tscri \S+ \(CRI runtime\.v1\)\n$/);
  assert.match(first.stderr, /stripper loaded: true/);
  assert.ok((await readdir(join(dir, 'cache'))).length > 0, 'the cache is written');
  const second = run();
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /stripper loaded: false/);
});
