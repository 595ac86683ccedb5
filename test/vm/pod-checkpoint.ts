// Runs inside the cgroup-v2-only VM (see test/integration/checkpoint.test.ts),
// where CRIU works: a pod with two containers, one of them several processes,
// is checkpointed with CheckpointPod while both count; both keep running; the
// checkpoint directory holds the manifest and one archive per container; and
// RestorePod makes a new pod whose containers, once started, count on from
// where the checkpoint left them.
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { startDaemon } from '../helpers/daemon.ts';

const started = Date.now();
const phase = (name: string) => process.stderr.write(`vm: ${name} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
// The VM's /tmp is an overlay, which cannot hold overlay upper dirs: use a tmpfs.
const scratch = '/run/tscri-vm';
await mkdir(scratch, { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', scratch]);
process.env.TMPDIR = scratch;
const results: Record<string, unknown> = {};
const registry = await startRegistry({ startTimeoutMs: 600_000 });
phase('registry serving');
const d = await startDaemon({ config: 'default_cgroup_parent = "/tscri-vm"\n[cni]\nconf_dir = "/nonexistent"\n', startTimeoutMs: 600_000 });
phase('tscri serving');

async function counts(logFile: string): Promise<number[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split(' ').slice(3).join(' ')))
    .filter((n) => Number.isFinite(n));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

try {
  await pushBusybox(registry.url, 'vm/busybox', 'v1');
  const image = `${registry.host}/vm/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const logDir = join(scratch, 'logs');
  const podConfig = (uid: string) => ({
    metadata: { name: 'counters', namespace: 'vm', uid, attempt: 0 },
    hostname: 'counters',
    log_directory: join(logDir, uid),
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  });
  const podA = podConfig(randomBytes(4).toString('hex'));
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: podA });
  // "main" counts in the shell's memory; "side" has a second process (a sleeping child) beside its counting shell.
  const counter = (step: number) => `i=0; while true; do i=$((i+${step})); echo $i; sleep 0.2; done`;
  const configs = [
    { metadata: { name: 'main' }, image: { image }, command: ['sh', '-c', counter(1)], log_path: 'main.log' },
    { metadata: { name: 'side' }, image: { image }, command: ['sh', '-c', `sleep 100000 & ${counter(10)}`], log_path: 'side.log' },
  ];
  const ids: string[] = [];
  for (const config of configs) {
    const { container_id } = await d.call('CreateContainer', { pod_sandbox_id: pod, config, sandbox_config: podA });
    await d.call('StartContainer', { container_id });
    ids.push(container_id);
  }
  const log = (uid: string, name: string) => join(logDir, uid, `${name}.log`);
  await waitFor('both counters to print 10 numbers', async () =>
    (await counts(log(podA.metadata.uid, 'main'))).length >= 10 && (await counts(log(podA.metadata.uid, 'side'))).length >= 10 ? true : undefined,
  );
  phase('counters running');

  const out = join(scratch, 'pod-ckpt');
  await mkdir(out, { mode: 0o700 });
  const t0 = Date.now();
  await d.call('CheckpointPod', { pod_sandbox_id: pod, output_path: out, container_ids: ids }, { timeoutMs: 900_000 });
  results.checkpointMs = Date.now() - t0;
  phase('pod checkpointed');
  const countsAt = { main: (await counts(log(podA.metadata.uid, 'main'))).at(-1), side: (await counts(log(podA.metadata.uid, 'side'))).at(-1) };
  results.files = (await readdir(out)).sort();
  results.modes = Object.fromEntries(
    await Promise.all((results.files as string[]).map(async (f) => [f, ((await stat(join(out, f))).mode & 0o777).toString(8)])),
  );
  const manifest = JSON.parse(await readFile(join(out, 'pod-checkpoint.json'), 'utf8'));
  results.manifest = {
    version: manifest.version,
    sandboxId: manifest.sandboxId,
    hostname: manifest.podConfig?.hostname,
    containers: manifest.containers.map((c: any) => [c.name, c.id]),
  };
  results.expected = {
    sandboxId: pod,
    containers: [
      ['main', ids[0]],
      ['side', ids[1]],
    ],
  };

  const before = { main: (await counts(log(podA.metadata.uid, 'main'))).length, side: (await counts(log(podA.metadata.uid, 'side'))).length };
  await new Promise((r) => setTimeout(r, 2000));
  const states = await Promise.all(ids.map(async (id) => (await d.call('ContainerStatus', { container_id: id })).status.state));
  results.originalsAfter = {
    states,
    keptCounting: (await counts(log(podA.metadata.uid, 'main'))).length > before.main && (await counts(log(podA.metadata.uid, 'side'))).length > before.side,
  };

  // The originals go away, as when a pod moves: the restored pod takes over.
  await d.call('StopPodSandbox', { pod_sandbox_id: pod });
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod });
  const podB = podConfig(randomBytes(4).toString('hex'));
  const t1 = Date.now();
  const restored = await d.call(
    'RestorePod',
    { checkpoint_path: out, config: podB, container_configs: configs.map((c) => ({ ...c, labels: { restored: 'yes' } })) },
    { timeoutMs: 900_000 },
  );
  results.restorePodMs = Date.now() - t1;
  results.restoredNames = restored.restored_containers.map((c: any) => c.name);
  results.createdStates = await Promise.all(
    restored.restored_containers.map(async (c: any) => (await d.call('ContainerStatus', { container_id: c.container_id })).status.state),
  );
  for (const c of restored.restored_containers) await d.call('StartContainer', { container_id: c.container_id }, { timeoutMs: 900_000 });
  results.restoreMs = Date.now() - t1;
  phase('pod restored');
  const first = async (name: string) =>
    waitFor(`the restored ${name} counter to print`, async () => {
      const c = await counts(log(podB.metadata.uid, name));
      return c.length >= 3 ? c.slice(0, 3) : undefined;
    });
  results.restoredFirst = { main: await first('main'), side: await first('side') };
  results.countsAtCheckpoint = countsAt;
  const side = restored.restored_containers.find((c: any) => c.name === 'side').container_id;
  const ps = await d.call('ExecSync', { container_id: side, cmd: ['sh', '-c', 'ps -o args | grep -c "^sleep 100000"'], timeout: 60 }, { timeoutMs: 120_000 });
  results.sideSleeper = ps.stdout.toString().trim();
  // Each restored process tree is in its new container's cgroup (where limits apply and a stop finds it).
  results.inOwnCgroup = await Promise.all(
    restored.restored_containers.map(async (c: any) => {
      const info = JSON.parse((await d.call('ContainerStatus', { container_id: c.container_id, verbose: true })).info.info);
      const cgroup = await readFile(`/proc/${info.pid}/cgroup`, 'utf8');
      return cgroup.includes(info.cgroupsPath);
    }),
  );
  results.stops = [];
  for (const c of restored.restored_containers) {
    const e = await d.call('StopContainer', { container_id: c.container_id, timeout: 2 }, { timeoutMs: 300_000 }).then(
      () => '',
      (err: Error) => err.message,
    );
    const state = (await d.call('ContainerStatus', { container_id: c.container_id })).status.state;
    (results.stops as unknown[]).push({ name: c.name, error: e, state });
  }
  await d.call('StopPodSandbox', { pod_sandbox_id: restored.pod_sandbox_id });
  await d.call('RemovePodSandbox', { pod_sandbox_id: restored.pod_sandbox_id });
} catch (err) {
  results.error = (err as Error).stack ?? String(err);
  results.daemonLog = d
    .output()
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-8)
    .join('\n');
} finally {
  // Pods left by a failure first: their mounts would keep the daemon's directories busy.
  for (const pod of (await d.call('ListPodSandbox', {}).catch(() => ({ items: [] }))).items) {
    await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
  }
  await d.cleanup().catch((err) => (results.cleanupError = String(err)));
  await registry.stop();
}
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
