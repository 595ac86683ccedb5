// The quick start's default pod network goes only where the node has none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../../bin/install-cni-network', import.meta.url));

async function run(t: { after(fn: () => Promise<void>): void }, files: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-cni-install-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const f of files) await writeFile(join(dir, f), '{}');
  const result = spawnSync('bash', [SCRIPT, join(dir, 'net.d')], { encoding: 'utf8' });
  return { dir: join(dir, 'net.d'), result };
}

test('an empty or missing directory gets the default bridge network', async (t) => {
  const { dir, result } = await run(t, []);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /installing the default CNI network/);
  assert.deepEqual(await readdir(dir), ['10-tscri-bridge.conflist']);
});

for (const existing of ['05-cluster.conflist', '05-cluster.conf', '05-cluster.json']) {
  test(`a directory holding only ${existing} is left alone, and the script says so`, async (t) => {
    const base = await mkdtemp(join(tmpdir(), 'tscri-cni-install-'));
    t.after(() => rm(base, { recursive: true, force: true }));
    await writeFile(join(base, existing), '{}');
    const result = spawnSync('bash', [SCRIPT, base], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /already has a network configuration/);
    assert.match(result.stdout, new RegExp(existing.replace('.', '\\.')));
    assert.deepEqual(await readdir(base), [existing]);
  });
}

test('files that are not network configurations do not count', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'tscri-cni-install-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  await writeFile(join(base, 'README'), 'notes');
  const result = spawnSync('bash', [SCRIPT, base], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual((await readdir(base)).sort(), ['10-tscri-bridge.conflist', 'README']);
});
