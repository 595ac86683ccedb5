// Anonymous volumes for an image's VOLUMEs: which paths get one, and the
// copy of the image's content into them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chown, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAnonymousVolumes, imageVolumePaths, MAX_IMAGE_VOLUMES, removeAnonymousVolumes } from '../../../src/oci/volumes.ts';
import { DomainError } from '../../../src/errors.ts';

test('imageVolumePaths: normalised, sorted, without request mounts; hostile configs refused', () => {
  assert.deepEqual(imageVolumePaths(undefined, [], 'i'), []);
  assert.deepEqual(imageVolumePaths(null, [], 'i'), []);
  assert.deepEqual(imageVolumePaths({ '/var/lib/db/': {}, data: {}, '/a//b': {}, '/mnt': {} }, [{ container_path: '/mnt/' }], 'i'), [
    '/a/b',
    '/data',
    '/var/lib/db',
  ]);
  const refused = (volumes: unknown, why: RegExp) =>
    assert.throws(
      () => imageVolumePaths(volumes, [], 'img'),
      (e: unknown) => e instanceof DomainError && e.kind === 'FailedPrecondition' && why.test(e.message),
    );
  refused(['/data'], /not an object/);
  refused('/data', /not an object/);
  refused({ '/': {} }, /root directory/);
  refused({ '/../..': {} }, /root directory/);
  refused({ 'a\0b': {} }, /not a usable path/);
  refused({ ['/x'.repeat(3000)]: {} }, /not a usable path/);
  refused(Object.fromEntries(Array.from({ length: MAX_IMAGE_VOLUMES + 1 }, (_, i) => [`/v${i}`, {}])), /at most/);
});

test('createAnonymousVolumes: content, ownership and symlinks copied; symlinks resolved inside the rootfs; missing paths empty', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'tscri-volumes-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const rootfs = join(work, 'rootfs');
  await mkdir(join(rootfs, 'data/sub'), { recursive: true });
  await writeFile(join(rootfs, 'data/sub/file'), 'image content');
  await chown(join(rootfs, 'data'), 1234, 4321);
  await symlink('/etc/passwd', join(rootfs, 'data/link'));
  // A VOLUME reached through an absolute symlink stays inside the rootfs.
  await mkdir(join(rootfs, 'etc'));
  await writeFile(join(rootfs, 'etc/only-in-image'), 'x');
  await symlink('/etc', join(rootfs, 'conf'));
  await writeFile(join(rootfs, 'afile'), 'x');
  const dir = join(work, 'volumes', 'c'.repeat(64));
  const mounts = await createAnonymousVolumes(rootfs, dir, ['/conf', '/data', '/nothere']);
  assert.deepEqual(
    mounts.map((m) => [m.container_path, m.host_path, m.readonly, m.propagation]),
    [
      ['/conf', join(dir, '0'), false, 'PROPAGATION_PRIVATE'],
      ['/data', join(dir, '1'), false, 'PROPAGATION_PRIVATE'],
      ['/nothere', join(dir, '2'), false, 'PROPAGATION_PRIVATE'],
    ],
  );
  assert.equal(await readFile(join(dir, '1/sub/file'), 'utf8'), 'image content');
  const owner = await stat(join(dir, '1'));
  assert.deepEqual([owner.uid, owner.gid], [1234, 4321]);
  assert.equal(await readlink(join(dir, '1/link')), '/etc/passwd');
  assert.ok((await lstat(join(dir, '1/link'))).isSymbolicLink());
  assert.equal(await readFile(join(dir, '0/only-in-image'), 'utf8'), 'x');
  assert.equal(await stat(join(dir, '0/passwd')).catch(() => 'absent'), 'absent', 'the host /etc was not copied');
  assert.deepEqual((await stat(join(dir, '2'))).isDirectory(), true);
  await assert.rejects(createAnonymousVolumes(rootfs, join(work, 'v2'), ['/afile']), /not a directory/);
  await removeAnonymousVolumes(join(work, 'volumes'), 'c'.repeat(64));
  assert.equal(await stat(dir).catch(() => 'absent'), 'absent');
  // An id that is not a container id never names a path to delete.
  await removeAnonymousVolumes(work, '..');
  assert.ok((await stat(work)).isDirectory());
});
