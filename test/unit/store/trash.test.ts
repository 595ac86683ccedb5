import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Trash } from '../../../src/store/trash.ts';
import { mountTmpfs } from '../../helpers/tmpfs.ts';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-trash-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function tree(dir: string): Promise<void> {
  await mkdir(join(dir, 'a', 'b', 'c'), { recursive: true });
  await writeFile(join(dir, 'a', 'f'), 'x');
  await writeFile(join(dir, 'a', 'b', 'c', 'g'), 'y');
  await symlink('/etc/passwd', join(dir, 'a', 'link'));
}

test('a discarded directory leaves its path at once and is deleted in the background', async (t) => {
  const dir = await tempDir(t);
  const warnings: string[] = [];
  const trash = new Trash(join(dir, 'trash'), { warn: (_o, msg) => warnings.push(msg) });
  await trash.open();
  assert.equal((await stat(trash.dir)).mode & 0o777, 0o700);
  const victim = join(dir, 'victim');
  await tree(victim);
  await trash.discard(victim);
  assert.equal(existsSync(victim), false);
  // The name is free right away, while the old contents wait in the trash.
  await mkdir(victim);
  await writeFile(join(victim, 'new'), 'kept');
  await trash.drain();
  assert.deepEqual(await readdir(trash.dir), []);
  assert.equal(await readFile(join(victim, 'new'), 'utf8'), 'kept');
  assert.equal(trash.pending, 0);
  assert.deepEqual(warnings, []);
});

test('discarding a missing path or the same path twice is a no-op', async (t) => {
  const dir = await tempDir(t);
  const trash = new Trash(join(dir, 'trash'));
  await trash.open();
  await trash.discard(join(dir, 'nosuch'));
  await mkdir(join(dir, 'once'));
  await trash.discard(join(dir, 'once'));
  await trash.discard(join(dir, 'once'));
  await trash.drain();
  assert.deepEqual(await readdir(trash.dir), []);
});

test('files and links are discarded too, and a file can be reused by name at once', async (t) => {
  const dir = await tempDir(t);
  const trash = new Trash(join(dir, 'trash'));
  await trash.open();
  await writeFile(join(dir, 'file'), 'x');
  await trash.discard(join(dir, 'file'));
  assert.equal(existsSync(join(dir, 'file')), false);
  await trash.drain();
  assert.deepEqual(await readdir(trash.dir), []);
});

test('what an earlier run left in the trash is deleted when it opens', async (t) => {
  const dir = await tempDir(t);
  const trashDir = join(dir, 'trash');
  await mkdir(trashDir, { mode: 0o755 });
  await tree(join(trashDir, 'left-by-a-crash'));
  await writeFile(join(trashDir, 'loose-file'), 'z');
  const trash = new Trash(trashDir);
  await trash.open();
  assert.equal((await stat(trashDir)).mode & 0o777, 0o700);
  await trash.drain();
  assert.deepEqual(await readdir(trashDir), []);
});

test('hostile: a symlink in the trash pointing outside is removed itself, never what it points to', async (t) => {
  const dir = await tempDir(t);
  const outside = join(dir, 'outside');
  await tree(outside);
  const trashDir = join(dir, 'trash');
  await mkdir(trashDir);
  await symlink(outside, join(trashDir, 'entry-link'));
  // And inside a discarded directory: a link to the outside dir and one to its file.
  const victim = join(dir, 'victim');
  await mkdir(join(victim, 'deep'), { recursive: true });
  await symlink(outside, join(victim, 'deep', 'dirlink'));
  await symlink(join(outside, 'a', 'f'), join(victim, 'filelink'));
  const trash = new Trash(trashDir);
  await trash.open();
  await trash.discard(victim);
  // A symlink discarded by its path goes as a link too.
  await symlink(outside, join(dir, 'link'));
  await trash.discard(join(dir, 'link'));
  await trash.drain();
  assert.deepEqual(await readdir(trashDir), []);
  assert.equal(await readFile(join(outside, 'a', 'f'), 'utf8'), 'x');
  assert.equal(await readFile(join(outside, 'a', 'b', 'c', 'g'), 'utf8'), 'y');
  assert.equal(existsSync(join(dir, 'link')), false);
});

test('hostile: a filesystem mounted inside a discarded directory is not emptied', async (t) => {
  const dir = await tempDir(t);
  const warnings: string[] = [];
  const trash = new Trash(join(dir, 'trash'), { warn: (_o, msg) => warnings.push(msg) });
  await trash.open();
  const victim = join(dir, 'victim');
  await mkdir(join(victim, 'mnt'), { recursive: true });
  await writeFile(join(victim, 'plain'), 'x');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(victim, 'mnt')]);
  await writeFile(join(victim, 'mnt', 'precious'), 'keep');
  await trash.discard(victim);
  const [entry] = await readdir(trash.dir);
  const mnt = join(trash.dir, entry!, 'mnt');
  try {
    await trash.drain();
    assert.equal(await readFile(join(mnt, 'precious'), 'utf8'), 'keep');
    assert.equal(existsSync(join(trash.dir, entry!, 'plain')), false);
    assert.equal(warnings.length, 1);
  } finally {
    // Before the temp dir goes: a recursive rm would walk into the mount.
    execFileSync('umount', ['-l', mnt]);
  }
});

test('a directory on another filesystem than the trash is deleted at once', async (t) => {
  const dir = await tempDir(t);
  const fs = await mountTmpfs(1 << 20);
  t.after(() => fs.remove());
  const trash = new Trash(join(dir, 'trash'));
  await trash.open();
  await tree(join(fs.dir, 'victim'));
  await trash.discard(join(fs.dir, 'victim'));
  assert.equal(existsSync(join(fs.dir, 'victim')), false);
  assert.deepEqual(await readdir(trash.dir), []);
});
