// mount(2)/umount2(2): tmpfs mounts, stacked and busy mounts, targets that
// are not mounted or missing, errors by errno name, and NUL bytes refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasOwnDevice, mount, MountError, MS_NOEXEC, MS_RDONLY, unmountAll } from '../../../src/sys/mount.ts';

async function mounted(target: string): Promise<number> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === target).length;
}

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-mount-'));
  t.after(async () => {
    while ((await mounted(join(dir, 'm'))) > 0) unmountAll(join(dir, 'm'));
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(join(dir, 'm'));
  return dir;
}

test('a tmpfs mount with flags and options; unmountAll removes stacked mounts', async (t) => {
  const dir = await scratch(t);
  const target = join(dir, 'm');
  assert.equal(hasOwnDevice(target), false);
  mount('tmpfs', target, 'tmpfs', MS_NOEXEC, 'mode=0700,size=64k');
  assert.equal(hasOwnDevice(target), true);
  const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === target)!;
  assert.match(line, /noexec/);
  assert.match(line, /size=64k/);
  mount('tmpfs', target, 'tmpfs', MS_RDONLY);
  assert.equal(await mounted(target), 2);
  assert.equal(unmountAll(target), 2);
  assert.equal(await mounted(target), 0);
  assert.equal(hasOwnDevice(target), false);
});

test('unmountAll of a target that is not mounted, or missing, does nothing', async (t) => {
  const dir = await scratch(t);
  assert.equal(unmountAll(join(dir, 'm')), 0);
  assert.equal(unmountAll(join(dir, 'missing')), 0);
});

test('a busy mount is detached lazily', async (t) => {
  const dir = await scratch(t);
  const target = join(dir, 'm');
  mount('tmpfs', target, 'tmpfs', 0);
  await writeFile(join(target, 'f'), 'x');
  const busy = await open(join(target, 'f'), 'r');
  try {
    assert.equal(unmountAll(target), 1);
    assert.equal(await mounted(target), 0);
  } finally {
    await busy.close();
  }
});

test('a failed mount names the errno; NUL bytes are refused', async (t) => {
  const dir = await scratch(t);
  assert.throws(
    () => mount('x', join(dir, 'm'), 'no-such-filesystem-type', 0),
    (err: unknown) => err instanceof MountError && err.code === 'ENODEV',
  );
  assert.throws(() => mount('x', join(dir, 'missing'), 'tmpfs', 0), { code: 'ENOENT' });
  assert.throws(() => mount('tmpfs', `${dir}/m\0/../../etc`, 'tmpfs', 0), { code: 'EINVAL' });
  assert.throws(() => mount('tmpfs', join(dir, 'm'), 'tmpfs', 0, 'size=1m\0,mode=777'), { code: 'EINVAL' });
  assert.throws(() => unmountAll('/\0etc'), { code: 'EINVAL' });
  assert.equal(await mounted(join(dir, 'm')), 0);
});
