// Snapshots under a real overlay mount: the merged view of several layers,
// whiteouts and opaque directories applied, 120 layers in one mount, images
// without layers, read-only image mounts, busy mounts, and nothing left
// mounted afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { SnapshotStore, chainIds } from '../../src/snapshot/snapshots.ts';
import { isMounted, mountReadonlyImage, prepareRootfs, removeRootfs, unmount, upperDir } from '../../src/snapshot/rootfs.ts';

async function tarOf(entries: Array<{ name: string; body?: string; type?: string; mode?: number }>): Promise<Buffer> {
  const p = pack();
  for (const e of entries) p.entry({ mode: e.type === 'directory' ? 0o755 : 0o644, ...e } as any, e.body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir));
}

async function setup(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-snap-'));
  const store = new SnapshotStore(join(dir, 'snapshots'));
  await store.load();
  // Hooks run in the order they were added: unmount whatever a failed test left, then delete.
  t.after(async () => {
    for (const m of (await mountsUnder(dir)).reverse()) await unmount(m);
    await rm(dir, { recursive: true, force: true });
  });
  const add = async (layers: Buffer[], compress: (b: Buffer) => Buffer = (b) => b, mediaType = 'application/vnd.oci.image.layer.v1.tar') => {
    const ids = chainIds(layers.map(digest));
    for (let i = 0; i < layers.length; i++) {
      await store.ensure(ids[i]!, digest(layers[i]!), async () => ({ stream: Readable.from([compress(layers[i]!)]), mediaType }));
    }
    return ids;
  };
  return { dir, store, add };
}

test('an overlay of snapshots shows the merged image with whiteouts and opaque dirs applied', async (t) => {
  const { dir, store, add } = await setup(t);
  const lower = await tarOf([
    { name: 'etc/keep', body: 'keep' },
    { name: 'etc/gone', body: 'x' },
    { name: 'cache/old', body: 'old' },
    { name: 'cache/sub/deep', body: 'deep' },
    { name: 'bin/tool', body: 'v1', mode: 0o755 },
  ]);
  const upper = await tarOf([
    { name: 'etc/.wh.gone' },
    { name: 'cache/.wh..wh..opq' },
    { name: 'cache/new', body: 'new' },
    { name: 'bin/tool', body: 'v2', mode: 0o755 },
  ]);
  const ids = await add([lower, upper], gzipSync, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const target = join(dir, 'rootfs');
  const dirs = await prepareRootfs(store, 'ctr1', ids, target);
  assert.deepEqual(dirs, { rootfs: target, upper: upperDir(store, 'ctr1'), work: join(store.containersDir, 'ctr1', 'work') });
  assert.equal(await isMounted(target), true);
  assert.equal(await readFile(join(target, 'etc/keep'), 'utf8'), 'keep');
  await assert.rejects(access(join(target, 'etc/gone')));
  assert.deepEqual(await readdir(join(target, 'etc')), ['keep']);
  assert.deepEqual(await readdir(join(target, 'cache')), ['new']);
  assert.equal(await readFile(join(target, 'bin/tool'), 'utf8'), 'v2');
  // Writes land in the upper dir; the snapshots stay as unpacked.
  await writeFile(join(target, 'written'), 'w');
  await rm(join(target, 'etc/keep'));
  assert.equal(await readFile(join(upperDir(store, 'ctr1'), 'written'), 'utf8'), 'w');
  assert.equal(await readFile(join(store.dir(ids[0]!), 'etc/keep'), 'utf8'), 'keep');
  // Preparing again is harmless.
  await prepareRootfs(store, 'ctr1', ids, target);
  assert.deepEqual(await mountsUnder(target), [target]);
  // Leased snapshots survive garbage collection until the container is removed.
  assert.deepEqual(await store.gc(new Set()), []);
  await removeRootfs(store, 'ctr1', target);
  await removeRootfs(store, 'ctr1', target);
  assert.equal(await isMounted(target), false);
  await assert.rejects(access(upperDir(store, 'ctr1')));
  assert.equal((await store.gc(new Set())).length, 2);
  assert.deepEqual(store.list(), []);
});

test('upper and work dirs can live under a directory of the caller', async (t) => {
  const { dir, store, add } = await setup(t);
  const ids = await add([await tarOf([{ name: 'a', body: 'a' }])], zstdCompressSync, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  await writeFile(join(bundle, 'config.json'), '{}');
  const target = join(bundle, 'rootfs');
  assert.deepEqual(await prepareRootfs(store, 'ctr3', ids, target, bundle), { rootfs: target, upper: join(bundle, 'upper'), work: join(bundle, 'work') });
  await writeFile(join(target, 'b'), 'b');
  assert.equal(await readFile(join(bundle, 'upper', 'b'), 'utf8'), 'b');
  assert.equal(await readFile(join(target, 'a'), 'utf8'), 'a');
  assert.equal((await stat(join(bundle, 'work'))).isDirectory(), true);
  await removeRootfs(store, 'ctr3', target, bundle);
  assert.equal(await isMounted(target), false);
  // Only what prepareRootfs made is gone.
  assert.deepEqual((await readdir(bundle)).sort(), ['config.json', 'rootfs']);
});

test('120 layers fit in one overlay mount; removal leaves no mount', async (t) => {
  const { dir, store, add } = await setup(t);
  const layers = [];
  for (let i = 0; i < 120; i++)
    layers.push(
      await tarOf([
        { name: `f${i}`, body: String(i) },
        { name: 'top', body: String(i) },
      ]),
    );
  const ids = await add(layers);
  const target = join(dir, 'many');
  await prepareRootfs(store, 'ctr2', ids, target);
  assert.equal(await readFile(join(target, 'f119'), 'utf8'), '119');
  assert.equal(await readFile(join(target, 'f0'), 'utf8'), '0');
  assert.equal(await readFile(join(target, 'top'), 'utf8'), '119');
  assert.equal((await readdir(target)).length, 121);
  await removeRootfs(store, 'ctr2', target);
  assert.deepEqual(await mountsUnder(dir), []);
});

test('images without layers mount an empty rootfs; read-only image mounts refuse writes', async (t) => {
  const { dir, store, add } = await setup(t);
  const empty = join(dir, 'empty-rootfs');
  await prepareRootfs(store, 'ctr4', [], empty);
  assert.deepEqual(await readdir(empty), []);
  await writeFile(join(empty, 'new'), 'n');
  await removeRootfs(store, 'ctr4', empty);
  assert.equal(await isMounted(empty), false);

  const ids = await add([await tarOf([{ name: 'f0', body: '0' }]), await tarOf([{ name: 'f1', body: '1' }])]);
  for (const [owner, chains] of [
    ['vol1', ids.slice(0, 1)],
    ['vol2', ids],
    ['vol3', []],
  ] as const) {
    const ro = join(dir, owner);
    await mountReadonlyImage(store, owner, [...chains], ro);
    assert.deepEqual(
      (await readdir(ro)).sort(),
      chains.map((_, i) => `f${i}`),
      owner,
    );
    await assert.rejects(writeFile(join(ro, 'x'), 'x'), /EROFS|read-only/);
    assert.equal(await store.remove(ids[0]!), chains.length === 0, owner);
    await unmount(ro);
    await store.release(owner);
    assert.equal(await isMounted(ro), false);
  }
});

test('a busy rootfs is detached lazily', async (t) => {
  const { dir, store, add } = await setup(t);
  const ids = await add([await tarOf([{ name: 'held', body: 'h' }])]);
  const target = join(dir, 'busy');
  await prepareRootfs(store, 'ctr5', ids, target);
  const cwdHolder = await open(join(target, 'held'), 'r');
  try {
    await removeRootfs(store, 'ctr5', target);
    assert.equal(await isMounted(target), false);
    assert.equal(await cwdHolder.readFile('utf8'), 'h');
  } finally {
    await cwdHolder.close();
  }
});

test('a failed mount leaves no lease, upper dir or mount', async (t) => {
  const { dir, store, add } = await setup(t);
  const ids = await add([await tarOf([{ name: 'x', body: 'x' }])]);
  // The target is a file: mount fails.
  const target = join(dir, 'a-file');
  await writeFile(target, 'not a dir');
  await assert.rejects(prepareRootfs(store, 'ctr6', ids, join(target)), /cannot mount|EEXIST|ENOTDIR/);
  assert.deepEqual([...store.listLeases()], []);
  await assert.rejects(access(upperDir(store, 'ctr6')));
  await assert.rejects(prepareRootfs(store, '../escape', ids, join(dir, 't')), /invalid/);
  assert.deepEqual(await mountsUnder(dir), []);
});

test('non-root processes use the rootfs although the snapshots are private to root', async (t) => {
  const { dir, store, add } = await setup(t);
  const { execFileSync } = await import('node:child_process');
  const { chmod } = await import('node:fs/promises');
  await chmod(dir, 0o711);
  const ids = await add([
    await tarOf([
      { name: 'etc/motd', body: 'hello' },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
    ]),
  ]);
  const target = join(dir, 'nonroot');
  await prepareRootfs(store, 'ctr7', ids, target);
  const asUser = (...args: string[]) =>
    execFileSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(asUser('cat', join(target, 'etc/motd')), 'hello');
  asUser('sh', '-c', `echo mine > ${join(target, 'tmp/mine')}`);
  assert.equal((await stat(join(upperDir(store, 'ctr7'), 'tmp/mine'))).uid, 1000);
  assert.throws(() => asUser('cat', join(store.dir(ids[0]!), 'etc/motd')), /Permission denied/);
  await removeRootfs(store, 'ctr7', target);
});
