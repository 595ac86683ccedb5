// A pull onto a full disk: the daemon's root on a small tmpfs. Whether the
// disk fills while a blob downloads or while a layer unpacks, the pull fails
// with RESOURCE_EXHAUSTED naming ENOSPC, leaves no partial file, and the
// daemon serves on (a small image pulls once there is room).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { FakeRegistry } from '../helpers/fake-registry.ts';

let d: TestDaemon;
let reg: FakeRegistry;
let dir: string;

before(async () => {
  reg = await new FakeRegistry().start();
  dir = await mkdtemp(join(tmpdir(), 'tscri-diskfull-'));
  await mkdir(join(dir, 'root'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', join(dir, 'root')]);
  d = await startDaemon({ dir });
});

after(async () => {
  await d?.stop();
  await reg?.stop();
  execFileSync('umount', ['-l', join(dir, 'root')]);
  await rm(dir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;

async function leftovers(): Promise<string[]> {
  const blobs = (await readdir(join(d.root, 'content', 'blobs', 'sha256'))).filter((n) => n.includes('.tmp-'));
  const snapshots = (await readdir(join(d.root, 'snapshots'))).filter((n) => n.startsWith('tmp-'));
  return [...blobs, ...snapshots];
}

const full = (e: any) => {
  assert.equal(e.code, status.RESOURCE_EXHAUSTED, `${status[e.code]}: ${e.details}`);
  assert.match(e.details, /the disk of .* is full \(ENOSPC\)/);
  assert.doesNotMatch(e.details, /Premature close/);
  return true;
};

test('a layer that does not fit when unpacked fails with RESOURCE_EXHAUSTED naming ENOSPC and the entry', async () => {
  // 20 MiB of zeros compress to a few KiB: the download fits, the unpack does not.
  await reg.addImage('full/unpack', 'v1', [[{ name: 'zeros', body: Buffer.alloc(20 * MiB) }]]);
  await assert.rejects(d.call('PullImage', { image: { image: `${reg.host}/full/unpack:v1` } }), (e: any) => full(e) && /layer entry "zeros"/.test(e.details));
  assert.deepEqual(await leftovers(), []);
});

test('a blob that does not fit when downloaded fails the same way, without retries', async () => {
  const img = await reg.addImage('full/download', 'v1', [], { rawLayers: [randomBytes(12 * MiB)] });
  await assert.rejects(d.call('PullImage', { image: { image: `${reg.host}/full/download:v1` } }), full);
  assert.equal(reg.blobRequests(img.layerDigests[0]!).length, 1);
  assert.deepEqual(await leftovers(), []);
});

test('the daemon serves on, and a small image pulls once there is room', async () => {
  const img = await reg.addImage('full/small', 'v1', [[{ name: 'hello', body: 'hello\n' }]]);
  assert.equal((await d.call('PullImage', { image: { image: `${reg.host}/full/small:v1` } })).image_ref, img.configDigest);
  assert.equal((await d.call('ListImages', {})).images.length, 1);
});
