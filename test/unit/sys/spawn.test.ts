// posix_spawn-based process starting: output, exit codes and signals, stdin,
// cwd and env, extra pipes, new sessions, default signal dispositions,
// programs that cannot start, timeouts, output limits, and many at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as nodeSpawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, spawnChild, SpawnError } from '../../../src/sys/spawn.ts';

test('run collects stdout and stderr and the exit code', async () => {
  const r = await run('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3']);
  assert.deepEqual([r.stdout, r.stderr, r.code, r.signal, r.timedOut], ['out\n', 'err\n', 3, null, false]);
});

test('a program is found on the PATH of the given environment', async () => {
  const r = await run('sh', ['-c', 'echo $FOO; echo $PATH'], { env: { PATH: '/usr/bin:/bin', FOO: 'bar' } });
  assert.equal(r.stdout, 'bar\n/usr/bin:/bin\n');
});

test('input goes to stdin, which is then closed', async () => {
  const r = await run('/bin/cat', [], { input: 'hello\nworld' });
  assert.equal(r.stdout, 'hello\nworld');
});

test('cwd is the working directory of the child', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-spawn-'));
  try {
    const r = await run('/bin/pwd', [], { cwd: dir });
    assert.equal(r.stdout.trim(), await realpath(dir));
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('a signal that ends the child is reported by name', async () => {
  const r = await run('/bin/sh', ['-c', 'kill -USR1 $$']);
  assert.deepEqual([r.code, r.signal], [null, 'SIGUSR1']);
});

test('the child starts with no signal ignored or blocked (Node ignores SIGPIPE)', async () => {
  const r = await run('/bin/sh', ['-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status']);
  assert.match(r.stdout, /SigBlk:\s+0+\n/);
  assert.match(r.stdout, /SigIgn:\s+0+\n/);
});

test('a program that does not exist fails with ENOENT, as child_process does', async () => {
  await assert.rejects(
    run('/nonexistent/program', []),
    (err: unknown) => err instanceof SpawnError && err.code === 'ENOENT' && err.path === '/nonexistent/program',
  );
  await assert.rejects(run('no-such-program-anywhere', []), { code: 'ENOENT' });
  const child = spawnChild('/nonexistent/program', []);
  const err = await new Promise<Error & { code?: string }>((resolve) => child.once('error', resolve));
  assert.equal(err.code, 'ENOENT');
  assert.equal(child.pid, undefined);
});

test('a file that is not executable fails with EACCES', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-spawn-'));
  try {
    await writeFile(join(dir, 'plain'), '#!/bin/sh\n', { mode: 0o644 });
    await assert.rejects(run(join(dir, 'plain'), []), { code: 'EACCES' });
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('timeoutMs kills the child with killSignal', async () => {
  const r = await run('/bin/sleep', ['30'], { timeoutMs: 100, killSignal: 'SIGKILL' });
  assert.deepEqual([r.timedOut, r.signal], [true, 'SIGKILL']);
});

test('a child writing more than maxBuffer is killed and the run rejected; the daemon is not flooded', async () => {
  await assert.rejects(
    run('/bin/sh', ['-c', 'while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done'], { maxBuffer: 64 * 1024 }),
    RangeError,
  );
});

test('extra pipes reach the child as fds 3 and up, in both directions', async () => {
  const child = spawnChild('/bin/sh', ['-c', 'echo sync >&3; read line <&4; echo "got $line"'], { stdio: ['ignore', 'pipe', 'ignore', 'pipe', 'pipe'] });
  let three = '';
  let out = '';
  child.stdio[3]!.on('data', (d) => (three += d));
  child.stdout!.on('data', (d) => (out += d));
  child.stdio[4]!.write('ping\n');
  const [code] = await new Promise<[number | null]>((resolve) => child.once('close', (c) => resolve([c])));
  assert.deepEqual([code, three, out], [0, 'sync\n', 'got ping\n']);
});

test('detached runs the child in a new session and process group', async () => {
  const r = await run('/bin/sh', ['-c', 'ps -o sid=,pgid= -p $$'], { detached: true });
  const [sid, pgid] = r.stdout.trim().split(/\s+/).map(Number);
  assert.equal(sid, pgid);
  assert.notEqual(sid, process.pid);
  const pidOfSession = await run('/bin/sh', ['-c', 'echo $$; ps -o sid= -p $$'], { detached: true });
  const [pid, ownSid] = pidOfSession.stdout.trim().split(/\s+/).map(Number);
  assert.equal(pid, ownSid);
});

test('exit and close events carry (code, signal); kill signals a running child', async () => {
  const child = spawnChild('/bin/sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore'] });
  assert.ok(await child.spawned);
  assert.ok(child.pid);
  const exit = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  assert.equal(child.kill('SIGTERM'), true);
  assert.deepEqual(await exit, [null, 'SIGTERM']);
  assert.equal(child.kill('SIGTERM'), false);
});

test("many children at once all report their own exit codes; Node's own children are unaffected", async () => {
  const codes = await Promise.all(Array.from({ length: 40 }, (_, i) => run('/bin/sh', ['-c', `exit ${i % 7}`]).then((r) => r.code)));
  assert.deepEqual(
    codes,
    Array.from({ length: 40 }, (_, i) => i % 7),
  );
  const nodeChild = nodeSpawn('/bin/sh', ['-c', 'exit 5']);
  const ours = run('/bin/sh', ['-c', 'exit 6']);
  const nodeCode = await new Promise((resolve) => nodeChild.once('exit', resolve));
  assert.equal(nodeCode, 5);
  assert.equal((await ours).code, 6);
});

test("no fd of the daemon, nor another child's pipe, leaks into a child", async () => {
  const fd = openSync('/etc/passwd', 'r');
  const other = spawnChild('/bin/sleep', ['30'], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  try {
    const r = await run('/bin/sh', ['-c', 'for f in /proc/self/fd/*; do echo "$f $(readlink $f)"; done']);
    const leaked = r.stdout
      .trim()
      .split('\n')
      .filter((line) => {
        const n = Number(/fd\/(\d+) /.exec(line)?.[1]);
        return n > 2 && (line.includes('/etc/passwd') || line.includes('socket:'));
      });
    assert.deepEqual(leaked, []);
  } finally {
    closeSync(fd);
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('close', resolve));
  }
});

test('a script ends once its last child has been collected', async () => {
  const r = await run(process.execPath, [
    '--input-type=module',
    '-e',
    `import { run } from ${JSON.stringify(new URL('../../../src/sys/spawn.ts', import.meta.url).href)}; const r = await run('/bin/sh', ['-c', 'sleep 0.2; echo done']); console.log(r.stdout.trim(), r.code);`,
  ]);
  assert.equal(r.stdout.trim(), 'done 0');
});

test('close comes after exit even when nobody reads the output', async () => {
  const child = spawnChild('/bin/sh', ['-c', 'head -c 2000 /dev/zero; head -c 2000 /dev/zero >&2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [code] = await new Promise<[number | null]>((resolve) => child.once('close', (c) => resolve([c])));
  assert.equal(code, 0);
});

test('arguments, environment or cwd with a NUL byte are refused before anything runs', () => {
  assert.throws(() => spawnChild('/bin/echo', ['a\0b']), TypeError);
  assert.throws(() => spawnChild('/bin/echo\0x', []), TypeError);
  assert.throws(() => spawnChild('/bin/echo', [], { env: { A: 'x\0y' } }), TypeError);
  assert.throws(() => spawnChild('/bin/echo', [], { cwd: '/tmp\0/etc' }), TypeError);
});

test('a signal sent before the process exists is delivered once it does; the pid comes with the spawn event', async () => {
  const child = spawnChild('/bin/sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore'], detached: true });
  assert.equal(child.killGroup('SIGKILL'), true);
  const spawned = new Promise<number | undefined>((resolve) => child.once('spawn', () => resolve(child.pid)));
  const exit = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  assert.ok(await spawned);
  assert.deepEqual(await exit, [null, 'SIGKILL']);
  const failed = spawnChild('/nonexistent/program', []);
  failed.once('error', () => undefined);
  assert.equal(await failed.spawned, undefined);
});
