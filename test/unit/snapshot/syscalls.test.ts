// The libc bindings: device numbers, mknod, extended attributes on a path
// itself (never through a symlink) and syncfs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S_IFCHR, S_IFIFO, SyscallError, lgetxattr, lsetxattr, makedev, mknod, syncfs } from '../../../src/snapshot/syscalls.ts';

test('libc bindings: mknod, xattrs on the path itself, syncfs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-syscalls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(makedev(0, 0), 0n);
  assert.equal(makedev(1, 3), 0x103n);
  assert.equal(makedev(4095, 1 << 19), (0xfffn << 8n) | (BigInt((1 << 19) >> 8) << 20n));

  mknod(join(dir, 'whiteout'), S_IFCHR, 0, 0);
  const whiteout = await lstat(join(dir, 'whiteout'));
  assert.ok(whiteout.isCharacterDevice());
  assert.equal(whiteout.rdev, 0);
  mknod(join(dir, 'fifo'), S_IFIFO | 0o640);
  assert.ok((await lstat(join(dir, 'fifo'))).isFIFO());
  assert.throws(
    () => mknod(join(dir, 'fifo'), S_IFIFO),
    (err: SyscallError) => err instanceof SyscallError && err.code === 'EEXIST',
  );

  await writeFile(join(dir, 'file'), 'f');
  await symlink('file', join(dir, 'link'));
  lsetxattr(join(dir, 'file'), 'trusted.test', Buffer.from([0, 1, 255]));
  assert.deepEqual(lgetxattr(join(dir, 'file'), 'trusted.test'), Buffer.from([0, 1, 255]));
  // The l* calls act on the symlink itself, not on what it points to.
  assert.equal(lgetxattr(join(dir, 'link'), 'trusted.test'), undefined);
  lsetxattr(join(dir, 'link'), 'trusted.onlink', Buffer.from('l'));
  assert.equal(lgetxattr(join(dir, 'file'), 'trusted.onlink'), undefined);
  assert.throws(() => lgetxattr(join(dir, 'absent'), 'trusted.test'), /ENOENT/);

  await syncfs(dir);
  await assert.rejects(syncfs(join(dir, 'file')), /ENOTDIR/);
});
