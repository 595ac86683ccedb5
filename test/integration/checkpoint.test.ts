// Checkpoint and restore. CRIU cannot dump processes on every host, so the
// real round trip runs test/vm/checkpoint.ts in the cgroup-v2 VM
// (../shared/vm/run-in-vm): a counter is checkpointed while it runs, keeps
// running, and a container restored from the archive in a new pod counts on
// from the checkpoint with the file changes it had. On the host, through the
// socket: CheckpointContainer's argument checks, and CreateContainer from
// archives that are not usable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pack } from 'tar-stream';
import { startDaemon } from '../helpers/daemon.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN_IN_VM = join(dirname(REPO.replace(/\/$/, '')), 'shared', 'vm', 'run-in-vm');
const SCRIPT = fileURLToPath(new URL('../vm/checkpoint.ts', import.meta.url));

test('a running container is checkpointed and restored in a new pod, counting on from its memory', { skip: existsSync(RUN_IN_VM) ? false : `no VM runner at ${RUN_IN_VM}` }, (t) => {
  const result = spawnSync(RUN_IN_VM, ['--mem', '2G', '--timeout', '900', '--workdir', REPO, '--', process.execPath, SCRIPT], { encoding: 'utf8', timeout: 1_000_000 });
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
  assert.deepEqual(r.diffEntries.filter((n: string) => n !== 'tmp/'), ['count', 'data.txt', 'etc/', 'etc/.wh.group']);
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
  const call = (rpc: string, req: object) => d.call(rpc, req).then(() => undefined, (e: any) => e);

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
  const create = (image: string) => call('CreateContainer', { pod_sandbox_id: pod, config: { metadata: { name: 'restored' }, image: { image } }, sandbox_config: podConfig });

  const noMetadata = join(dir, 'nometa.tar');
  await tarFile(noMetadata, [['spec.dump', '{}']]);
  const e1 = await create(noMetadata);
  assert.equal(e1.code, status.INVALID_ARGUMENT);
  assert.match(e1.details, /no config\.dump/);

  const notPulled = join(dir, 'notpulled.tar');
  const dump = { id: 'x', rootfsImageName: 'example.com/never/pulled:v9', rootfsImageRef: 'sha256:' + 'c'.repeat(64), containerConfig: { metadata: { name: 'c' }, mounts: [] } };
  await tarFile(notPulled, [['config.dump', JSON.stringify(dump)], ['spec.dump', '{}'], ['checkpoint/inventory.img', '']]);
  const e2 = await create(notPulled);
  assert.equal(e2.code, status.NOT_FOUND);
  assert.match(e2.details, /example\.com\/never\/pulled:v9/);
  assert.deepEqual((await d.call('ListContainers', {})).containers, []);
});
