// ContainerService on hand-made bundles: real runc and conmon, with a fake
// pod, image and rootfs (the busybox tree, read-only) so the lifecycle is
// tested on its own: create/start/exit, logs, stop with and without a
// trapped SIGTERM, ExecSync, OOM, restart of the service, removal.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { mountTmpfs } from '../../helpers/tmpfs.ts';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ContainerService } from '../../../src/container/service.ts';
import { toStatus } from '../../../src/server/errors.ts';
import { alive, containerConfig, setup, waitState } from './service-fixture.ts';

test('a container runs, logs to the CRI log file and exits with its code', async (t) => {
  const { service, sandbox, dir } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('hello', ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3']), null);
  const created = (await service.status(id, true)).status;
  assert.equal(created.state, 'CONTAINER_CREATED');
  assert.ok(Number(created.created_at) > 0);
  assert.equal(created.image_id, 'sha256:' + 'b'.repeat(64));
  assert.equal(created.image?.image, 'busybox');
  assert.deepEqual(
    service.list({ id: id.slice(0, 8), state: null, pod_sandbox_id: '', label_selector: {} }).map((c) => c.id),
    [id],
  );
  assert.deepEqual(service.list({ id: '', state: { state: 'CONTAINER_RUNNING' }, pod_sandbox_id: '', label_selector: {} }), []);
  assert.deepEqual(service.list({ id: '', state: null, pod_sandbox_id: '', label_selector: { app: 'other' } }), []);

  await service.start(id);
  await waitState(service, id, 'CONTAINER_EXITED');
  const { status, info } = await service.status(id, true);
  assert.equal(status.exit_code, 3);
  assert.equal(status.reason, 'Error');
  assert.ok(Number(status.finished_at) >= Number(status.started_at));
  assert.equal(status.log_path, join(dir, 'logs', 'hello.log'));
  assert.ok(JSON.parse(info.info!).runtimeSpec.process.args.includes('/bin/sh'));
  const log = await readFile(join(dir, 'logs', 'hello.log'), 'utf8');
  assert.match(log, /stdout F out\n/);
  assert.match(log, /stderr F err\n/);

  await service.remove(id);
  await service.remove(id);
  assert.throws(
    () => service.get(id),
    (e: Error) => toStatus(e).code === grpcStatus.NOT_FOUND,
  );
  await access(join(dir, 'logs', 'hello.log'));
});

test('names are reserved until removal; unknown pods and images are refused', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('one', ['/bin/true']), null);
  await assert.rejects(
    service.create(sandbox.id, containerConfig('one', ['/bin/true']), null),
    (e: Error) => toStatus(e).code === grpcStatus.ALREADY_EXISTS && e.message.includes(id),
  );
  await assert.rejects(service.create('nope', containerConfig('two', ['/bin/true']), null), (e: Error) => toStatus(e).code === grpcStatus.NOT_FOUND);
  await assert.rejects(
    service.create(sandbox.id, { ...containerConfig('two', ['/bin/true']), image: { image: 'missing' } }, null),
    (e: Error) => toStatus(e).code === grpcStatus.NOT_FOUND && /pull/.test(e.message),
  );
  await service.remove(id);
  const again = await service.create(sandbox.id, containerConfig('one', ['/bin/true']), null);
  assert.notEqual(again, id);
});

test('StartContainer refuses a container whose pod is not ready', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('late', ['/bin/sleep', '30']), null);
  (sandbox as any).state = 'SANDBOX_NOTREADY';
  await assert.rejects(service.start(id), (e: Error) => toStatus(e).code === grpcStatus.FAILED_PRECONDITION && /not ready/.test(e.message));
  assert.equal(service.get(id).state, 'CONTAINER_CREATED');
  await service.remove(id);
});

test('creates in a pod finish before its stop or removal goes on, and creates after it are refused', async (t) => {
  const { service, sandbox } = await setup(t);
  const creating = service.create(sandbox.id, containerConfig('racing', ['/bin/sleep', '30']), null);
  const stopping = service.exclusive(sandbox.id, async () => {
    const records = service.records();
    assert.equal(records.length, 1, 'the container created meanwhile is there to be stopped');
    assert.ok(records[0]!.createdAt > 0, 'and fully created');
    (sandbox as any).state = 'SANDBOX_NOTREADY';
  });
  const late = service.create(sandbox.id, containerConfig('late', ['/bin/true']), null);
  await stopping;
  await assert.rejects(late, (e: Error) => toStatus(e).code === grpcStatus.FAILED_PRECONDITION);
  await service.remove(await creating);
});

test('a container whose conmon was killed is seen exited once its process ends', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('orphaned', ['/bin/sleep', '300']), null);
  await service.start(id);
  const r = service.get(id);
  const conmon = Number(await readFile(join(r.bundle, 'conmon.pid'), 'utf8'));
  assert.ok(alive(conmon), 'conmon runs');
  process.kill(conmon, 'SIGKILL');
  for (let i = 0; i < 100 && alive(conmon); i++) await new Promise((res) => setTimeout(res, 20));
  // Still running without its monitor: it reads running.
  assert.equal((await service.status(id, false)).status.state, 'CONTAINER_RUNNING');
  process.kill(r.pid, 'SIGKILL');
  for (let i = 0; i < 100 && alive(r.pid); i++) await new Promise((res) => setTimeout(res, 20));
  const { status } = await service.status(id, false);
  assert.equal(status.state, 'CONTAINER_EXITED');
  assert.match(status.message ?? '', /monitor/);
  await service.remove(id);
});

test('a stop whose exit cannot be written (disk full) fails, and memory and disk agree until it can', async (t) => {
  const disk = await mountTmpfs(1 << 20);
  t.after(() => disk.remove());
  const { service, sandbox } = await setup(t, { root: join(disk.dir, 'root') });
  const id = await service.create(sandbox.id, containerConfig('full', ['/bin/sleep', '300']), null);
  await service.start(id);
  const recordFile = join(disk.dir, 'root', 'containers', `${id}.json`);
  const onDisk = async () => JSON.parse(await readFile(recordFile, 'utf8')).state;
  const filler = join(disk.dir, 'filler');
  await writeFile(filler, Buffer.alloc(4 << 20)).catch(() => undefined);

  await assert.rejects(service.stop(id, 0), (e: Error) => toStatus(e).code === grpcStatus.RESOURCE_EXHAUSTED && /ENOSPC/.test(e.message));
  assert.equal(await onDisk(), 'CONTAINER_RUNNING');
  assert.equal(service.get(id).state, 'CONTAINER_RUNNING', 'memory says what the disk says');
  assert.deepEqual(
    (await readdir(join(disk.dir, 'root', 'containers'))).filter((n) => n.includes('.tmp-')),
    [],
    'no temporary file is left',
  );

  await rm(filler);
  await service.stop(id, 0);
  assert.equal(service.get(id).state, 'CONTAINER_EXITED');
  assert.equal(await onDisk(), 'CONTAINER_EXITED');
  assert.equal(service.get(id).exitCode, 137);
  await service.remove(id);
});

test('stop honours a trapped SIGTERM with SIGKILL after the timeout; a handled SIGTERM exits cleanly', async (t) => {
  const { service, sandbox } = await setup(t);
  const stubborn = await service.create(
    sandbox.id,
    containerConfig('stubborn', ['/bin/sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done']),
    null,
  );
  const polite = await service.create(sandbox.id, containerConfig('polite', ['/bin/sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done']), null);
  await service.start(stubborn);
  await service.start(polite);
  assert.equal(service.get(stubborn).state, 'CONTAINER_RUNNING');
  await new Promise((r) => setTimeout(r, 300));
  await Promise.all([service.stop(stubborn, 1), service.stop(polite, 30)]);
  assert.equal(service.get(stubborn).state, 'CONTAINER_EXITED');
  assert.equal(service.get(stubborn).exitCode, 137);
  assert.equal(service.get(polite).exitCode, 0);
  assert.equal(service.get(polite).reason, 'Completed');
  await service.stop(stubborn, 1);
  await service.stop('no-such-container', 1);
});

test('ExecSync returns output and exit code, and a timed-out command is killed', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(
    sandbox.id,
    containerConfig('exec', ['/bin/sh', '-c', 'while true; do sleep 1; done'], { envs: [{ key: 'GREETING', value: 'hi' }] }),
    null,
  );
  await service.start(id);
  const result = await service.execSync(id, ['/bin/sh', '-c', 'echo $GREETING; echo bad >&2; exit 4'], 10);
  assert.equal(result.stdout.toString(), 'hi\n');
  assert.equal(result.stderr.toString(), 'bad\n');
  assert.equal(result.exitCode, 4);
  await assert.rejects(service.execSync(id, ['/bin/sh', '-c', 'sleep 30'], 1), (e: Error) => toStatus(e).code === grpcStatus.DEADLINE_EXCEEDED);
  const ps = await service.execSync(id, ['/bin/ps', '-o', 'args'], 10);
  assert.doesNotMatch(ps.stdout.toString(), /sleep 30/);
  assert.equal(service.get(id).state, 'CONTAINER_RUNNING');
});

test('a memory limit that is exceeded reads OOMKilled', async (t) => {
  const { service, sandbox } = await setup(t);
  const linux = { resources: { memory_limit_in_bytes: 16 * 1024 * 1024 }, security_context: null };
  const id = await service.create(
    sandbox.id,
    containerConfig('hog', ['/bin/sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'], { linux }),
    null,
  );
  await service.start(id);
  await waitState(service, id, 'CONTAINER_EXITED');
  assert.equal(service.get(id).reason, 'OOMKilled');
  assert.notEqual(service.get(id).exitCode, 0);
});

test('containers survive a restart of the service, and exits while it was down are picked up', async (t) => {
  const env = await setup(t);
  const { service, sandbox } = env;
  const keeps = await service.create(sandbox.id, containerConfig('keeps', ['/bin/sh', '-c', 'while true; do sleep 0.1; done']), null);
  const dies = await service.create(sandbox.id, containerConfig('dies', ['/bin/sh', '-c', 'read x; exit 5'], { stdin: true, stdin_once: true }), null);
  await service.start(keeps);
  await service.start(dies);
  const pid = service.get(keeps).pid;
  service.close();
  // While the service is down, one container ends.
  await service.runtimeFor('').kill(dies, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 500));

  const next = new ContainerService(env.deps);
  env.service = next;
  await next.load();
  assert.equal(next.get(keeps).state, 'CONTAINER_RUNNING');
  assert.ok(alive(pid));
  assert.equal(next.get(dies).state, 'CONTAINER_EXITED');
  assert.equal(next.get(dies).exitCode, 137);
  await next.stop(keeps, 0);
  assert.equal(next.get(keeps).state, 'CONTAINER_EXITED');
  assert.ok(!alive(pid));
});

test('removal leaves no conmon, runtime state or bundle behind', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('gone', ['/bin/sh', '-c', 'while true; do sleep 0.1; done']), null);
  await service.start(id);
  const bundle = service.get(id).bundle;
  const conmonPid = Number(await readFile(join(bundle, 'conmon.pid'), 'utf8'));
  assert.ok(alive(conmonPid));
  await service.remove(id);
  assert.throws(() => service.get(id), 'the container is gone on return');
  // What it left on disk and in the runtime goes after the answer.
  await service.cleanupsDone();
  for (let i = 0; i < 100 && alive(conmonPid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!alive(conmonPid), 'conmon left');
  await assert.rejects(access(bundle));
  assert.equal(await service.runtimeFor('').state(id), undefined);
});

test('a runtime that cannot delete a removed container leaves its rootfs, bundle and exit file removed all the same', async (t) => {
  const env = await setup(t);
  const { service, sandbox, dir, deps } = env;
  // runc, except that `delete` fails.
  const wrapper = join(dir, 'runc-no-delete');
  await writeFile(wrapper, '#!/bin/sh\nfor a in "$@"; do [ "$a" = delete ] && { echo "delete refused" >&2; exit 1; }; done\nexec /usr/sbin/runc "$@"\n', {
    mode: 0o755,
  });
  deps.config.runtime.handlers.runc!.path = wrapper;
  const removed: string[] = [];
  deps.removeRootfs = async (id) => void removed.push(id);
  const id = await service.create(sandbox.id, containerConfig('undeletable', ['/bin/sleep', '300']), null);
  await service.start(id);
  const bundle = service.get(id).bundle;
  const root = service.runtimeFor('').root;
  try {
    await service.stop(id, 0);
    await service.remove(id);
    await service.cleanupsDone();
    assert.deepEqual(removed, [id], 'the rootfs is removed');
    await assert.rejects(access(bundle), 'the bundle is removed');
    assert.ok(await service.runtimeFor('').state(id), 'the runtime state is what the refused delete left');
  } finally {
    // What the refused delete left (runtime state, cgroup), removed with the real runc.
    execFileSync('/usr/sbin/runc', ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
  }
});

test('ReopenContainerLog makes conmon write to a fresh file after rotation', async (t) => {
  const { service, sandbox, dir } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('ticker', ['/bin/sh', '-c', 'while true; do echo tick; sleep 0.1; done']), null);
  await service.start(id);
  const log = join(dir, 'logs', 'ticker.log');
  await new Promise((r) => setTimeout(r, 300));
  await rename(log, `${log}.1`);
  // Quiet container or not, the new file exists when the call returns.
  await service.reopenLog(id);
  assert.ok(existsSync(log), 'the new log file exists when ReopenContainerLog returns');
  for (let i = 0; i < 100 && !(await readFile(log, 'utf8').catch(() => '')).includes('tick'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(await readFile(log, 'utf8'), /stdout F tick/);
  await service.stop(id, 0);
  await assert.rejects(service.reopenLog(id), (e: Error) => toStatus(e).code === grpcStatus.FAILED_PRECONDITION);
});

test('UpdateContainerResources changes the cgroup limit of a running container', async (t) => {
  const { service, sandbox } = await setup(t);
  const id = await service.create(sandbox.id, containerConfig('limited', ['/bin/sh', '-c', 'while true; do sleep 1; done']), null);
  await service.start(id);
  await service.update(id, { memory_limit_in_bytes: 64 * 1024 * 1024 } as any);
  const cgroup = service.get(id).cgroupsPath;
  const v1 = `/sys/fs/cgroup/memory${cgroup}/memory.limit_in_bytes`;
  const v2 = `/sys/fs/cgroup/unified${cgroup}/memory.max`;
  const value = await readFile(v1, 'utf8').catch(() => readFile(v2, 'utf8'));
  assert.equal(value.trim(), String(64 * 1024 * 1024));
  assert.equal((await service.status(id, false)).status.resources?.linux?.memory_limit_in_bytes, 64 * 1024 * 1024);
});

test('the lifecycle publishes created, started, stopped and deleted events', async (t) => {
  const { service, sandbox } = await setup(t);
  const subscription = service.events.subscribe();
  const id = await service.create(sandbox.id, containerConfig('events', ['/bin/sh', '-c', 'exit 0']), null);
  await service.start(id);
  await waitState(service, id, 'CONTAINER_EXITED');
  await service.remove(id);
  const seen = [];
  for (let i = 0; i < 4; i++) {
    const event = await subscription.next();
    assert.equal(event!.containerId, id);
    assert.equal(event!.sandboxId, sandbox.id);
    seen.push(event!.type);
  }
  assert.deepEqual(seen, ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
  service.events.unsubscribe(subscription);
});
