// CheckpointContainer at the service level with real runc and conmon but a
// stand-in for `runc checkpoint` (CRIU does not work on every host; the real
// thing runs in the VM test, test/integration/checkpoint.test.ts): argument
// and state checks, the archive written from what the checkpoint produced,
// and a checkpoint that fails or passes its timeout leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { status as grpcStatus } from '@grpc/grpc-js';
import { extract } from 'tar-stream';
import { DomainError } from '../../../src/errors.ts';
import { toStatus } from '../../../src/server/errors.ts';
import { mknod, S_IFCHR } from '../../../src/snapshot/syscalls.ts';
import { alive, containerConfig, setup, waitState, type Env } from './service-fixture.ts';

const RUNC = '/usr/sbin/runc';

/** A runtime that is runc for everything but `checkpoint`, which runs body instead. */
async function fakeCheckpointRuntime(env: Env, body: string): Promise<void> {
  const script = join(env.dir, `runc-${Math.random().toString(36).slice(2)}`);
  await writeFile(
    script,
    `#!/bin/sh
for a in "$@"; do [ "$a" = checkpoint ] && fake=1; done
if [ -z "$fake" ]; then exec ${RUNC} "$@"; fi
while [ $# -gt 0 ]; do case "$1" in --image-path) img=$2; shift;; --work-path) work=$2; shift;; esac; shift; done
${body}
`,
  );
  await chmod(script, 0o755);
  const handlers = env.deps.config.runtime.handlers;
  handlers[env.deps.config.runtime.default_handler]!.path = script;
}

async function running(t: any, env: Env, name: string): Promise<string> {
  const id = await env.service.create(env.sandbox.id, containerConfig(name, ['/bin/sh', '-c', 'while true; do sleep 0.1; done']), null);
  await env.service.start(id);
  t.after(() => env.service.remove(id).catch(() => undefined));
  return id;
}

function runcStatus(env: Env, id: string): string {
  const root = join(env.deps.config.state, 'runtime', env.deps.config.runtime.default_handler);
  return JSON.parse(execFileSync(RUNC, ['--root', root, 'state', id], { encoding: 'utf8' })).status;
}

async function tarNames(file: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const tar = extract();
  tar.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.push(c as Buffer));
    stream.on('end', () => {
      names.set(header.name, Buffer.concat(chunks).toString());
      next();
    });
  });
  await pipeline(createReadStream(file), tar);
  return names;
}

const code = (c: grpcStatus, re: RegExp) => (e: unknown) => e instanceof DomainError && toStatus(e).code === c && re.test(e.message);

test('CheckpointContainer refuses unknown containers, bad locations and containers that do not run', async (t) => {
  const env = await setup(t);
  const out = join(env.dir, 'out');
  await mkdir(out);
  await assert.rejects(env.service.checkpoint('', join(out, 'a.tar'), 0), code(grpcStatus.INVALID_ARGUMENT, /container_id/));
  await assert.rejects(env.service.checkpoint('nosuch', join(out, 'a.tar'), 0), code(grpcStatus.NOT_FOUND, /nosuch/));

  const created = await env.service.create(env.sandbox.id, containerConfig('created', ['/bin/sh', '-c', 'exit 0']), null);
  await assert.rejects(env.service.checkpoint(created, '', 0), code(grpcStatus.INVALID_ARGUMENT, /location is required/));
  await assert.rejects(env.service.checkpoint(created, 'relative.tar', 0), code(grpcStatus.INVALID_ARGUMENT, /absolute/));
  await assert.rejects(env.service.checkpoint(created, join(env.dir, 'nosuch', 'a.tar'), 0), code(grpcStatus.INVALID_ARGUMENT, /does not exist/));
  await assert.rejects(env.service.checkpoint(created, out, 0), code(grpcStatus.INVALID_ARGUMENT, /not a regular file/));
  await assert.rejects(env.service.checkpoint(created, join(out, 'a.tar'), 0), code(grpcStatus.FAILED_PRECONDITION, /created/));

  await env.service.start(created);
  await waitState(env.service, created, 'CONTAINER_EXITED');
  await assert.rejects(env.service.checkpoint(created, join(out, 'a.tar'), 0), code(grpcStatus.FAILED_PRECONDITION, /exited; only a running container/));
  assert.deepEqual(await readdir(out), []);
});

test('a checkpoint is archived with CRIU images, spec, metadata and rootfs diff, and the container runs on', async (t) => {
  const env = await setup(t);
  await fakeCheckpointRuntime(
    env,
    'mkdir -p "$img" && echo pages > "$img/pages-1.img" && echo inv > "$img/inventory.img" && echo stats > "$work/stats-dump" && exit 0',
  );
  const id = await running(t, env, 'counter');
  const upper = env.deps.upperDir(id);
  await mkdir(join(upper, 'etc'), { recursive: true });
  await mkdir(join(upper, 'proc'));
  await writeFile(join(upper, 'data.txt'), 'before\n');
  mknod(join(upper, 'etc', 'group'), S_IFCHR, 0, 0);

  const location = join(env.dir, 'counter.tar');
  await env.service.checkpoint(id, location, 30);
  assert.equal((await stat(location)).mode & 0o777, 0o600);
  const names = await tarNames(location);
  assert.deepEqual([...names.keys()].sort(), [
    'checkpoint/',
    'checkpoint/inventory.img',
    'checkpoint/pages-1.img',
    'config.dump',
    'rootfs-diff.tar',
    'spec.dump',
    'stats-dump',
  ]);
  const spec = JSON.parse(names.get('spec.dump')!);
  assert.deepEqual(spec, JSON.parse(await readFile(join(env.service.get(id).bundle, 'config.json'), 'utf8')));
  const dump = JSON.parse(names.get('config.dump')!);
  assert.equal(dump.id, id);
  assert.equal(dump.rootfsImageName, 'busybox');
  assert.equal(dump.rootfsImageRef, 'sha256:' + 'b'.repeat(64));
  assert.equal(dump.podSandboxId, env.sandbox.id);
  assert.equal(dump.restored, false);
  assert.deepEqual(dump.containerConfig.command, ['/bin/sh', '-c', 'while true; do sleep 0.1; done']);
  assert.ok(Date.parse(dump.checkpointedTime) >= Date.parse(dump.createdTime));

  const diffFile = join(env.dir, 'rootfs-diff.tar');
  await writeFile(diffFile, names.get('rootfs-diff.tar')!, 'latin1');
  const diff = await tarNames(diffFile);
  assert.deepEqual([...diff.keys()].sort(), ['data.txt', 'etc/', 'etc/.wh.group'], '/proc is a mount point of the spec and stays out');

  assert.equal(env.service.get(id).state, 'CONTAINER_RUNNING');
  assert.equal(runcStatus(env, id), 'running', 'the container is resumed after the checkpoint');
  assert.deepEqual(await readdir(join(env.deps.config.root, 'checkpoints')), [], 'the work directory is removed');
});

test('a checkpoint that fails or passes its timeout leaves no archive and the container running', async (t) => {
  const env = await setup(t);
  const id = await running(t, env, 'slow');
  const location = join(env.dir, 'slow.tar');

  await fakeCheckpointRuntime(env, 'echo \'{"level":"error","msg":"criu failed: type NOTIFY errno 0"}\' >&2; exit 1');
  await assert.rejects(env.service.checkpoint(id, location, 30), code(grpcStatus.INTERNAL, /criu failed/));
  assert.equal(existsSync(location), false);

  const pidFile = join(env.dir, 'fake-criu.pid');
  await fakeCheckpointRuntime(env, `mkdir -p "$img"; echo partial > "$img/pages-1.img"; sh -c 'echo $$ > ${pidFile}; exec sleep 60'`);
  const started = Date.now();
  await assert.rejects(env.service.checkpoint(id, location, 1), code(grpcStatus.DEADLINE_EXCEEDED, /within 1 s/));
  assert.ok(Date.now() - started < 10_000, `the deadline was kept (${Date.now() - started} ms)`);
  const pid = Number(await readFile(pidFile, 'utf8'));
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(alive(pid), false, 'the checkpoint process group is killed');
  assert.equal(existsSync(location), false);
  assert.deepEqual(
    (await readdir(env.dir)).filter((n) => n.includes('slow.tar')),
    [],
    'no temporary archive is left',
  );
  assert.deepEqual(await readdir(join(env.deps.config.root, 'checkpoints')), []);
  assert.equal(env.service.get(id).state, 'CONTAINER_RUNNING');
  assert.equal(runcStatus(env, id), 'running');
});
