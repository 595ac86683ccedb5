// The snapshot store without mounts: chain ids, one shared unpack per layer,
// cancellation, failures leaving nothing, crash leftovers cleaned at load,
// leases on disk and garbage collection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { SnapshotStore, chainIds } from '../../../src/snapshot/snapshots.ts';
import { LayerError } from '../../../src/snapshot/layer.ts';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name, mode: 0o644 }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function newStore(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-snapstore-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SnapshotStore(join(dir, 'snapshots'));
  await store.load();
  return store;
}

const opener = (layer: Buffer) => async () => ({ stream: Readable.from([layer]), mediaType: TAR });
const tmpDirs = async (store: SnapshotStore) => (await readdir(store.root)).filter((n) => n.startsWith('tmp-'));

test('chain ids follow the OCI image spec', () => {
  const a = `sha256:${'a'.repeat(64)}`;
  const b = `sha256:${'b'.repeat(64)}`;
  const c = `sha256:${'c'.repeat(64)}`;
  const ab = `sha256:${sha(`${a} ${b}`)}`;
  assert.deepEqual(chainIds([]), []);
  assert.deepEqual(chainIds([a]), [a]);
  assert.deepEqual(chainIds([a, b, c]), [a, ab, `sha256:${sha(`${ab} ${c}`)}`]);
  // The same layer on another base is another snapshot.
  assert.notEqual(chainIds([b, a])[1], chainIds([a, b])[1]);
});

test('a layer is unpacked once and found again after a reload', async (t) => {
  const store = await newStore(t);
  const layer = await tarOf({ 'etc/hello': 'hi' });
  const id = `sha256:${sha(layer)}`;
  await store.ensure(id, id, opener(layer));
  assert.ok(store.has(id));
  assert.equal(await readFile(join(store.dir(id), 'etc/hello'), 'utf8'), 'hi');
  assert.equal(store.relativeDir(id), '1/fs');
  assert.deepEqual(store.list(), [{ chainId: id, diffId: id, size: layer.length }]);
  let opened = false;
  await store.ensure(id, id, async () => {
    opened = true;
    throw new Error('must not be opened');
  });
  assert.equal(opened, false);
  const again = new SnapshotStore(store.root);
  await again.load();
  assert.equal(again.dir(id), store.dir(id));
  assert.ok((await store.usage()).inodes >= 3);
  assert.equal(store.mountpoint(), store.root);
  // Host users cannot reach the images' setuid binaries and devices.
  assert.equal((await stat(store.root)).mode & 0o777, 0o700);
});

test('concurrent ensures of one chain id share one unpack', async (t) => {
  const store = await newStore(t);
  const layer = await tarOf({ a: 'a' });
  const id = `sha256:${sha(layer)}`;
  let opens = 0;
  const gate = new PassThrough();
  const open = async () => {
    opens += 1;
    return { stream: gate, mediaType: TAR };
  };
  const all = Array.from({ length: 5 }, () => store.ensure(id, id, open));
  setImmediate(() => gate.end(layer));
  await Promise.all(all);
  assert.equal(opens, 1);
  assert.equal(store.list().length, 1);
  assert.deepEqual(await readdir(store.root).then((n) => n.filter((x) => /^\d+$/.test(x))), ['1']);
});

test('one caller giving up does not cancel the unpack others wait for; all giving up cancels it', async (t) => {
  const store = await newStore(t);
  const layer = await tarOf({ big: 'x'.repeat(100_000) });
  const id = `sha256:${sha(layer)}`;
  const gate = new PassThrough();
  const open = async () => ({ stream: gate, mediaType: TAR });
  const quitter = new AbortController();
  const first = store.ensure(id, id, open, quitter.signal);
  const second = store.ensure(id, id, open);
  gate.write(layer.subarray(0, 1000));
  quitter.abort(new Error('caller went away'));
  await assert.rejects(first, /caller went away/);
  gate.end(layer.subarray(1000));
  await second;
  assert.ok(store.has(id));

  const other = await tarOf({ other: 'y'.repeat(100_000) });
  const otherId = `sha256:${sha(other)}`;
  const stalled = new PassThrough();
  stalled.write(other.subarray(0, 1000));
  const a = new AbortController();
  const b = new AbortController();
  const pa = store.ensure(otherId, otherId, async () => ({ stream: stalled, mediaType: TAR }), a.signal);
  const pb = store.ensure(otherId, otherId, async () => ({ stream: stalled, mediaType: TAR }), b.signal);
  await new Promise((r) => setImmediate(r));
  a.abort(new Error('a gone'));
  b.abort(new Error('b gone'));
  await assert.rejects(pa, /a gone/);
  await assert.rejects(pb, /b gone/);
  // The unpack stops, closes its input and removes its temp dir.
  while (!stalled.destroyed || (await tmpDirs(store)).length) await new Promise((r) => setTimeout(r, 5));
  assert.equal(store.has(otherId), false);
  // A later ensure starts afresh and succeeds.
  await store.ensure(otherId, otherId, opener(other));
  assert.ok(store.has(otherId));
});

test('a diff id mismatch or a broken layer fails and leaves nothing', async (t) => {
  const store = await newStore(t);
  const layer = await tarOf({ b: 'b' });
  const wrong = `sha256:${'e'.repeat(64)}`;
  await assert.rejects(
    store.ensure(wrong, wrong, opener(layer)),
    (err: Error) => err instanceof LayerError && /does not match the image config's diff id/.test(err.message),
  );
  await assert.rejects(
    store.ensure(wrong, wrong, async () => ({
      stream: Readable.from([Buffer.from('not a layer at all, not even close'.repeat(40))]),
      mediaType: `${TAR}+gzip`,
    })),
  );
  await assert.rejects(
    store.ensure(wrong, wrong, async () => {
      throw new Error('blob missing');
    }),
    /blob missing/,
  );
  assert.deepEqual(store.list(), []);
  assert.deepEqual(await tmpDirs(store), []);
  assert.deepEqual(
    (await readdir(store.root)).filter((n) => /^\d+$/.test(n)),
    [],
  );
});

test('load removes what interrupted unpacks and removals left', async (t) => {
  const store = await newStore(t);
  const layer = await tarOf({ kept: 'k' });
  const id = `sha256:${sha(layer)}`;
  await store.ensure(id, id, opener(layer));
  // A crash mid-unpack leaves a temp dir; one mid-rename, a number without its index entry.
  await mkdir(join(store.root, 'tmp-0123456789abcdef', 'fs', 'usr'), { recursive: true });
  await writeFile(join(store.root, 'tmp-0123456789abcdef', 'fs', 'usr', 'half'), 'h');
  await mkdir(join(store.root, 'tmp-rm-0011223344556677', 'fs'), { recursive: true });
  await mkdir(join(store.root, '7', 'fs'), { recursive: true });
  await writeFile(join(store.root, 'leases', 'broken.json'), '{not json');
  const again = new SnapshotStore(store.root);
  await again.load();
  assert.deepEqual((await readdir(store.root)).sort(), ['1', 'containers', 'empty', 'leases']);
  assert.deepEqual(
    again.list().map((s) => s.chainId),
    [id],
  );
  assert.deepEqual(await readdir(join(store.root, 'leases')), []);
});

test('leases survive a reload and keep snapshots from gc and remove', async (t) => {
  const store = await newStore(t);
  const layers = [await tarOf({ one: '1' }), await tarOf({ two: '2' }), await tarOf({ three: '3' })];
  const ids = layers.map((l) => `sha256:${sha(l)}`);
  for (let i = 0; i < ids.length; i++) await store.ensure(ids[i]!, ids[i]!, opener(layers[i]!));
  await store.retain('ctr-1', [ids[0]!]);
  await assert.rejects(store.retain('../evil', [ids[0]!]), /invalid/);

  const again = new SnapshotStore(store.root);
  await again.load();
  assert.deepEqual([...again.listLeases()], [['ctr-1', [ids[0]!]]]);
  assert.equal(await again.remove(ids[0]!), false);
  assert.deepEqual(await again.gc(new Set([ids[1]!])), [ids[2]!]);
  assert.deepEqual(
    again
      .list()
      .map((s) => s.chainId)
      .sort(),
    [ids[0]!, ids[1]!].sort(),
  );

  await again.retain('gone-vol1', [ids[1]!]);
  assert.deepEqual(await again.releaseUnless((owner) => owner === 'ctr-1'), ['gone-vol1']);
  assert.deepEqual([...again.listLeases().keys()], ['ctr-1']);
  assert.deepEqual(await readdir(join(again.root, 'leases')), ['ctr-1.json']);
  await again.release('ctr-1');
  await again.release('ctr-1');
  assert.deepEqual((await again.gc(new Set())).sort(), [ids[0]!, ids[1]!].sort());
  assert.deepEqual(again.list(), []);
  assert.deepEqual((await readdir(again.root)).sort(), ['containers', 'empty', 'leases']);
  assert.equal(await again.remove(ids[0]!), true);

  // Directory numbers are reused smallest first, keeping mount options short.
  await again.ensure(ids[2]!, ids[2]!, opener(layers[2]!));
  assert.equal(again.relativeDir(ids[2]!), '1/fs');
  assert.throws(() => again.dir(ids[0]!), /does not exist/);
});

/** What du(1) says of dir: allocated bytes and inodes, hard links counted once. */
async function du(dir: string): Promise<{ bytes: number; inodes: number }> {
  const { execFileSync } = await import('node:child_process');
  const bytes = Number(execFileSync('du', ['-s', '--block-size=1', dir], { encoding: 'utf8' }).split('\t')[0]);
  const inodes = Number(execFileSync('du', ['-s', '--inodes', dir], { encoding: 'utf8' }).split('\t')[0]);
  return { bytes, inodes };
}

test('disk usage matches du: snapshots measured once at unpack, hard links counted once', async (t) => {
  const store = await newStore(t);
  const p = pack();
  p.entry({ name: 'big', mode: 0o644 }, 'b'.repeat(200_000));
  p.entry({ name: 'alias', type: 'link', linkname: 'big' });
  p.entry({ name: 'dir/', type: 'directory', mode: 0o755 });
  p.entry({ name: 'dir/small', mode: 0o644 }, 's');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const layer = Buffer.concat(chunks);
  const id = `sha256:${sha(layer)}`;
  await store.ensure(id, id, opener(layer));
  await mkdir(join(store.containersDir, 'c1', 'upper'), { recursive: true });
  await writeFile(join(store.containersDir, 'c1', 'upper', 'written'), 'w'.repeat(50_000));

  assert.deepEqual(await store.usage(), await du(store.root));
  assert.deepEqual(await store.snapshotUsage(), await du(store.dir(id)));
  // The figures come from meta.json after a reload, and are measured again when it lacks them.
  const again = new SnapshotStore(store.root);
  await again.load();
  assert.deepEqual(await again.usage(), await du(store.root));
  const metaFile = join(store.root, '1', 'meta.json');
  const meta = JSON.parse(await readFile(metaFile, 'utf8'));
  assert.ok(meta.usage.bytes >= 200_000);
  delete meta.usage;
  await writeFile(metaFile, JSON.stringify(meta));
  const legacy = new SnapshotStore(store.root);
  await legacy.load();
  assert.deepEqual(await legacy.usage(), await du(store.root));
});
