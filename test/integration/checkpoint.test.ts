// Checkpoint and restore. CRIU cannot dump processes on every host, so the
// real round trip runs test/vm/checkpoint.ts in the cgroup-v2 VM
// (../shared/vm/run-in-vm): a counter is checkpointed while it runs, keeps
// running, and a container restored from the archive in a new pod counts on
// from the checkpoint with the file changes it had; and test/vm/pod-checkpoint.ts
// does the same for a pod of two containers with CheckpointPod and RestorePod.
// On the host, through the socket: the argument checks of CheckpointContainer,
// CheckpointPod and RestorePod, and CreateContainer from archives that are not
// usable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pack } from 'tar-stream';
import { startDaemon } from '../helpers/daemon.ts';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { runVmScript, vmSkip } from '../helpers/vm.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN_IN_VM = join(dirname(REPO.replace(/\/$/, '')), 'shared', 'vm', 'run-in-vm');
const SCRIPT = fileURLToPath(new URL('../vm/checkpoint.ts', import.meta.url));
const POD_SCRIPT = fileURLToPath(new URL('../vm/pod-checkpoint.ts', import.meta.url));

test('a running container is checkpointed and restored in a new pod, counting on from its memory', {
  skip: existsSync(RUN_IN_VM) ? false : `no VM runner at ${RUN_IN_VM}`,
}, (t) => {
  const result = spawnSync(RUN_IN_VM, ['--mem', '2G', '--timeout', '900', '--workdir', REPO, '--', process.execPath, SCRIPT], {
    encoding: 'utf8',
    timeout: 1_000_000,
  });
  for (const l of `${result.stdout}\n${result.stderr}`.split('\n')) if (l.startsWith('vm: ')) t.diagnostic(l);
  const line = result.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result from the VM (exit ${result.status}):\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
  const r = JSON.parse(line!.slice('RESULT '.length));
  assert.equal(r.error, undefined, `${r.error}\n${r.daemonLog ?? ''}`);
  t.diagnostic(`checkpoint ${r.checkpointMs} ms, restore ${r.restoreMs} ms, archive ${r.archiveBytes} bytes with ${r.criuImages} CRIU images`);

  assert.deepEqual(r.entries, ['checkpoint/', 'config.dump', 'dump.log', 'rootfs-diff.tar', 'spec.dump', 'stats-dump']);
  assert.ok(r.criuImages > 5, `CRIU images in the archive: ${r.criuImages}`);
  assert.equal(r.archiveMode, '600');
  assert.match(r.configDump.rootfsImageName, /\/vm\/busybox:v1$/);
  assert.equal(r.configDump.command[0], 'sh');
  // The container's file changes, with the deleted /etc/group as an OCI whiteout.
  assert.deepEqual(
    r.diffEntries.filter((n: string) => n !== 'tmp/'),
    ['count', 'data.txt', 'etc/', 'etc/.wh.group'],
  );
  assert.deepEqual(r.originalAfter, { state: 'CONTAINER_RUNNING', keptCounting: true });

  // The restored shell goes on from the number it had in memory at the checkpoint.
  assert.ok(r.countAtCheckpoint >= 10, `count at checkpoint: ${r.countAtCheckpoint}`);
  assert.equal(r.restoredFirst[0], r.countAtCheckpoint + 1, `first numbers after restore: ${r.restoredFirst}`);
  assert.deepEqual(r.restoredFirst, [r.countAtCheckpoint + 1, r.countAtCheckpoint + 2, r.countAtCheckpoint + 3]);
  assert.deepEqual(r.dataFile, { exit: 0, out: 'before' });
  assert.notEqual(r.groupFile.exit, 0, 'the file deleted before the checkpoint stays deleted');
  assert.ok(Number(r.countFile.out) > r.countAtCheckpoint);
  assert.equal(r.restoredStatus.state, 'CONTAINER_RUNNING');
  assert.match(r.restoredStatus.image, /\/vm\/busybox:v1$/);
  assert.deepEqual(r.restoredStatus.labels, { restored: 'yes' });
  assert.equal(r.restoredStatus.restored, true);
  assert.match(r.restoredStatus.restoredFrom, /counter\.tar$/);
});

async function tarFile(file: string, entries: Array<[string, string]>): Promise<void> {
  const p = pack();
  for (const [name, body] of entries) p.entry({ name }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  await writeFile(file, Buffer.concat(chunks));
}

test('CheckpointContainer and restores answer bad requests through the socket', async (t) => {
  const parent = `/tscri-ckpt-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'tscri-ckpt-'));
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n[cni]\nconf_dir = "/nonexistent"\n` });
  const pods: string[] = [];
  // One cleanup, in order: pods (their namespace mounts) before the daemon and its directories.
  t.after(async () => {
    for (const id of pods) await d.call('RemovePodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
    await d.cleanup();
    await removeCgroup(parent).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const call = (rpc: string, req: object) =>
    d.call(rpc, req).then(
      () => undefined,
      (e: any) => e,
    );

  const notFound = await call('CheckpointContainer', { container_id: 'nosuch', location: join(dir, 'x.tar') });
  assert.equal(notFound.code, status.NOT_FOUND);
  assert.match(notFound.details, /nosuch/);
  assert.equal((await call('CheckpointContainer', { location: join(dir, 'x.tar') })).code, status.INVALID_ARGUMENT);

  const podConfig = {
    metadata: { name: 'ckpt', namespace: 'ckpt', uid: randomBytes(4).toString('hex'), attempt: 0 },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: podConfig });
  pods.push(pod);
  const create = (image: string) =>
    call('CreateContainer', { pod_sandbox_id: pod, config: { metadata: { name: 'restored' }, image: { image } }, sandbox_config: podConfig });

  const noMetadata = join(dir, 'nometa.tar');
  await tarFile(noMetadata, [['spec.dump', '{}']]);
  const e1 = await create(noMetadata);
  assert.equal(e1.code, status.INVALID_ARGUMENT);
  assert.match(e1.details, /no config\.dump/);

  const notPulled = join(dir, 'notpulled.tar');
  const dump = {
    id: 'x',
    rootfsImageName: 'example.com/never/pulled:v9',
    rootfsImageRef: 'sha256:' + 'c'.repeat(64),
    containerConfig: { metadata: { name: 'c' }, mounts: [] },
  };
  await tarFile(notPulled, [
    ['config.dump', JSON.stringify(dump)],
    ['spec.dump', '{}'],
    ['checkpoint/inventory.img', ''],
  ]);
  const e2 = await create(notPulled);
  assert.equal(e2.code, status.NOT_FOUND);
  assert.match(e2.details, /example\.com\/never\/pulled:v9/);
  assert.deepEqual((await d.call('ListContainers', {})).containers, []);
});

test('a pod with two containers is checkpointed with CheckpointPod and restored with RestorePod, counting on', { skip: vmSkip }, (t) => {
  const run = runVmScript(POD_SCRIPT, ['--mem', '2G']);
  for (const note of run.notes) t.diagnostic(note);
  assert.ok(run.result, run.failure);
  const r = run.result!;
  assert.equal(r.error, undefined, `${r.error}\n${r.daemonLog ?? ''}`);
  t.diagnostic(`CheckpointPod ${r.checkpointMs} ms, RestorePod ${r.restorePodMs} ms, restore and start ${r.restoreMs} ms`);
  const [a, b] = r.expected.containers.map((c: string[]) => c[1]);
  assert.deepEqual(r.files, [`container-${a}.tar`, `container-${b}.tar`, 'pod-checkpoint.json'].sort());
  assert.deepEqual(Object.values(r.modes), ['600', '600', '600']);
  assert.deepEqual(r.manifest, { version: 1, sandboxId: r.expected.sandboxId, hostname: 'counters', containers: r.expected.containers });
  assert.deepEqual(r.originalsAfter, { states: ['CONTAINER_RUNNING', 'CONTAINER_RUNNING'], keptCounting: true });
  assert.deepEqual(r.restoredNames, ['main', 'side']);
  assert.deepEqual(r.createdStates, ['CONTAINER_CREATED', 'CONTAINER_CREATED']);
  // Each counter goes on from a number at most what the log showed right after the checkpoint: its memory came along.
  const { main, side } = r.restoredFirst;
  assert.deepEqual(main, [main[0], main[0] + 1, main[0] + 2]);
  assert.deepEqual(side, [side[0], side[0] + 10, side[0] + 20]);
  assert.ok(main[0] > 10 && main[0] <= r.countsAtCheckpoint.main + 1, `main restarted at ${main[0]}, checkpointed near ${r.countsAtCheckpoint.main}`);
  assert.ok(side[0] > 100 && side[0] <= r.countsAtCheckpoint.side + 10, `side restarted at ${side[0]}, checkpointed near ${r.countsAtCheckpoint.side}`);
  assert.equal(r.sideSleeper, '1', 'the second process of the side container was restored too');
  assert.deepEqual(r.inOwnCgroup, [true, true], "restored processes are in their new containers' cgroups");
  assert.deepEqual(r.stops, [
    { name: 'main', error: '', state: 'CONTAINER_EXITED' },
    { name: 'side', error: '', state: 'CONTAINER_EXITED' },
  ]);
});

test('CheckpointPod and RestorePod answer bad requests with a precise status and leave nothing behind', async (t) => {
  const parent = `/tscri-podckpt-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'tscri-podckpt-'));
  const registry = await startRegistry();
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n[cni]\nconf_dir = "/nonexistent"\n` });
  const pods: string[] = [];
  t.after(async () => {
    // Every pod the daemon has, including any a restore should not have left.
    const all = (await d.call('ListPodSandbox', {}).catch(() => ({ items: [] }))).items.map((p: any) => p.id);
    for (const id of new Set([...pods, ...all])) await d.call('RemovePodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
    await d.cleanup().finally(() => registry.stop());
    await removeCgroup(parent).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  await pushBusybox(registry.url, 'ckpt/busybox', 'v1');
  const image = `${registry.host}/ckpt/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const call = (rpc: string, req: object) =>
    d.call(rpc, req).then(
      () => undefined,
      (e: any) => e,
    );
  const expect = async (rpc: string, req: object, code: number, pattern: RegExp) => {
    const e = await call(rpc, req);
    assert.ok(e, `${rpc} ${JSON.stringify(req).slice(0, 200)} succeeded`);
    assert.equal(e.code, code, `${e.details}`);
    assert.match(e.details, pattern);
  };
  const podConfig = (name: string, pid = 'CONTAINER') => ({
    metadata: { name, namespace: 'ckpt', uid: randomBytes(4).toString('hex'), attempt: 0 },
    hostname: name,
    linux: { security_context: { namespace_options: { network: 'NODE', pid, ipc: 'POD' } } },
  });
  const cfgA = podConfig('a');
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: cfgA });
  pods.push(pod);
  const create = async (p: string, cfg: object, name: string) =>
    (await d.call('CreateContainer', { pod_sandbox_id: p, config: { metadata: { name }, image: { image }, command: ['sleep', '1000'] }, sandbox_config: cfg }))
      .container_id;
  const running = await create(pod, cfgA, 'run');
  await d.call('StartContainer', { container_id: running });
  const created = await create(pod, cfgA, 'idle');
  const cfgB = podConfig('b');
  const { pod_sandbox_id: other } = await d.call('RunPodSandbox', { config: cfgB });
  pods.push(other);
  const foreign = await create(other, cfgB, 'foreign');
  const cfgShared = podConfig('shared', 'POD');
  const { pod_sandbox_id: shared } = await d.call('RunPodSandbox', { config: cfgShared });
  pods.push(shared);
  const out = join(dir, 'out');
  await mkdir(out);

  const ck = (over: object) => ({ pod_sandbox_id: pod, output_path: out, container_ids: [running], ...over });
  await expect('CheckpointPod', ck({ options: { 'leave-frozen': 'yes' } }), status.INVALID_ARGUMENT, /options "leave-frozen" are not supported/);
  await expect('CheckpointPod', ck({ pod_sandbox_id: '' }), status.INVALID_ARGUMENT, /pod_sandbox_id is required/);
  await expect('CheckpointPod', ck({ pod_sandbox_id: 'nosuchpod' }), status.NOT_FOUND, /nosuchpod/);
  await expect('CheckpointPod', ck({ output_path: 'relative' }), status.INVALID_ARGUMENT, /absolute/);
  await expect('CheckpointPod', ck({ output_path: join(dir, 'missing') }), status.INVALID_ARGUMENT, /does not exist/);
  await expect('CheckpointPod', ck({ output_path: `${out}/../../../etc/passwd` }), status.INVALID_ARGUMENT, /not a directory/);
  await expect('CheckpointPod', ck({ container_ids: [] }), status.INVALID_ARGUMENT, /container_ids is empty/);
  await expect('CheckpointPod', ck({ container_ids: [running, running] }), status.INVALID_ARGUMENT, /named twice/);
  await expect('CheckpointPod', ck({ container_ids: ['nosuch'] }), status.NOT_FOUND, /nosuch/);
  await expect('CheckpointPod', ck({ container_ids: [running, foreign] }), status.INVALID_ARGUMENT, /belongs to pod/);
  await expect('CheckpointPod', ck({ container_ids: [running, created] }), status.FAILED_PRECONDITION, /must be running/);
  await expect('CheckpointPod', ck({ pod_sandbox_id: shared, container_ids: [running] }), status.FAILED_PRECONDITION, /shares one pid namespace/);
  await writeFile(join(out, 'someone-elses'), 'x');
  await expect('CheckpointPod', ck({}), status.FAILED_PRECONDITION, /is not empty/);
  await rm(join(out, 'someone-elses'));
  // On this host CRIU cannot dump: the failure is reported, the directory is left empty and the container runs on, not frozen.
  const failed = await call('CheckpointPod', ck({}));
  if (failed) {
    assert.deepEqual(await readdir(out), []);
    assert.equal((await d.call('ContainerStatus', { container_id: running })).status.state, 'CONTAINER_RUNNING');
    const exec = await d.call('ExecSync', { container_id: running, cmd: ['true'], timeout: 10 });
    assert.equal(exec.exit_code, 0, 'the container is not left paused');
  }

  // RestorePod: nothing is created for a checkpoint or request that does not fit.
  const before = (await d.call('ListPodSandbox', {})).items.length;
  const restore = (over: object) => ({
    checkpoint_path: out,
    config: { ...cfgA, metadata: { ...cfgA.metadata, uid: 'new-uid' } },
    container_configs: [{ metadata: { name: 'run' }, image: { image } }],
    ...over,
  });
  await expect('RestorePod', restore({ options: { x: '1' } }), status.INVALID_ARGUMENT, /options "x"/);
  await expect('RestorePod', restore({ config: null }), status.INVALID_ARGUMENT, /config is required/);
  await expect('RestorePod', restore({ checkpoint_path: join(dir, 'missing') }), status.INVALID_ARGUMENT, /is not a directory/);
  const fake = join(dir, 'fake');
  await mkdir(fake);
  await expect('RestorePod', restore({ checkpoint_path: fake }), status.INVALID_ARGUMENT, /manifest .* is missing/);
  const id = 'e'.repeat(64);
  // The pod config as the daemon keeps it (every field present), as CheckpointPod writes it.
  const stored = JSON.parse(await readFile(join(d.root, 'sandboxes', `${pod}.json`), 'utf8')).config;
  const manifest = {
    version: 1,
    sandboxId: 'x',
    runtimeHandler: '',
    checkpointedTime: '',
    podConfig: stored,
    containers: [{ name: 'run', id, archive: '../../escape.tar' }],
  };
  await writeFile(join(fake, 'pod-checkpoint.json'), JSON.stringify(manifest));
  await expect('RestorePod', restore({ checkpoint_path: fake }), status.INVALID_ARGUMENT, /expected container-e+\.tar/);
  manifest.containers[0]!.archive = `container-${id}.tar`;
  await writeFile(join(fake, 'pod-checkpoint.json'), JSON.stringify(manifest));
  await expect('RestorePod', restore({ checkpoint_path: fake }), status.INVALID_ARGUMENT, /archive of container "run" .* is missing/);
  await tarFile(join(fake, `container-${id}.tar`), [['spec.dump', '{}']]);
  await expect('RestorePod', restore({ checkpoint_path: fake, runtime_handler: 'crun' }), status.FAILED_PRECONDITION, /runtime handler "runc"/);
  await expect('RestorePod', restore({ checkpoint_path: fake, config: { ...cfgA, hostname: 'elsewhere' } }), status.FAILED_PRECONDITION, /hostname/);
  await expect(
    'RestorePod',
    restore({ checkpoint_path: fake, container_configs: [{ metadata: { name: 'other' } }] }),
    status.INVALID_ARGUMENT,
    /missing: run; not in the checkpoint: other/,
  );
  await expect('RestorePod', restore({ checkpoint_path: fake }), status.INVALID_ARGUMENT, /no config\.dump/);
  const dump = {
    id,
    rootfsImageName: 'example.com/never/pulled:v9',
    rootfsImageRef: 'sha256:' + 'c'.repeat(64),
    containerConfig: { metadata: { name: 'run' }, command: ['sleep', '1000'], mounts: [] },
  };
  await tarFile(join(fake, `container-${id}.tar`), [
    ['config.dump', JSON.stringify(dump)],
    ['spec.dump', '{}'],
    ['checkpoint/inventory.img', ''],
  ]);
  await expect(
    'RestorePod',
    restore({ checkpoint_path: fake, container_configs: [{ metadata: { name: 'run' }, command: ['sh'] }] }),
    status.FAILED_PRECONDITION,
    /command differs/,
  );
  await expect('RestorePod', restore({ checkpoint_path: fake }), status.FAILED_PRECONDITION, /checkpointed from image sha256:c+/);
  assert.equal((await d.call('ListPodSandbox', {})).items.length, before, 'no pod was left by a refused restore');
  // A restore whose container cannot be made removes the pod it made.
  await expect(
    'RestorePod',
    restore({ checkpoint_path: fake, container_configs: [{ metadata: { name: 'run' } }] }),
    status.NOT_FOUND,
    /example\.com\/never\/pulled:v9 .*is not present on this node/,
  );
  assert.equal((await d.call('ListPodSandbox', {})).items.length, before, 'the pod made for a failed restore was removed');
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri', 'the daemon serves on');
});
