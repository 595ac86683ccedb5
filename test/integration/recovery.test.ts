// Crash recovery: the daemon is killed with SIGKILL while it runs pods,
// creates, starts, stops and removes containers and pulls images; each
// restart must list everything with its true state, let it all be removed,
// and leave nothing behind on the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';
import { waitGone } from '../helpers/wait.ts';

let registry: TestRegistry;
let network: TestNetwork;
let dir: string;
let image: string;
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-crash-${tag}`;

before(async () => {
  registry = await startRegistry();
  network = await makeTestNetwork();
  dir = await mkdtemp(join(tmpdir(), 'tscri-crash-'));
  await pushBusybox(registry.url, 'crash/busybox', 'v1');
  image = `${registry.host}/crash/busybox:v1`;
});

after(async () => {
  await network?.cleanup();
  await registry?.stop();
  await removeCgroup(parent).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const config = () => `default_cgroup_parent = "${parent}"\n${network.toml}`;

function podConfig(name: string) {
  return { metadata: { name, namespace: 'crash', uid: `${name}-${tag}`, attempt: 0 }, log_directory: join(dir, 'logs', name), linux: {} };
}

async function leftovers(d: TestDaemon): Promise<string[]> {
  const found: string[] = [];
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(d.dir));
  if (mounts.length) found.push(`mounts: ${mounts.join(', ')}`);
  const procs = execFileSync('sh', ['-c', `ps -eo args | grep -E "[c]onmon|[c]atatonit|[r]unc init" | grep -F "${d.dir}" || true`], {
    encoding: 'utf8',
  }).trim();
  if (procs) found.push(`processes: ${procs}`);
  found.push(...(await network.leftovers([], { othersRunning: false })));
  return found;
}

async function removeEverything(d: TestDaemon): Promise<void> {
  for (const c of (await d.call('ListContainers', {})).containers) await d.call('RemoveContainer', { container_id: c.id });
  for (const p of (await d.call('ListPodSandbox', {})).items) {
    await d.call('StopPodSandbox', { pod_sandbox_id: p.id });
    await d.call('RemovePodSandbox', { pod_sandbox_id: p.id });
  }
}

/** One round: start a daemon, run the workload, kill it after delayMs, restart, check, clean up. */
async function round(delayMs: number, step: string): Promise<void> {
  const root = join(dir, `round-${step}-${delayMs}`);
  await mkdir(root, { recursive: true });
  let d = await startDaemon({ config: config(), dir: root });
  const pod = podConfig(`p${delayMs}${step}`);
  const workload = (async () => {
    if (step === 'pull') return d.call('PullImage', { image: { image } });
    await d.call('PullImage', { image: { image } });
    const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: pod });
    if (step === 'runp') return;
    const { container_id } = await d.call('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name: 'c' }, image: { image }, command: ['sleep', '300'], log_path: 'c.log' },
      sandbox_config: pod,
    });
    await d.call('StartContainer', { container_id });
    if (step === 'start') return;
    await d.call('StopContainer', { container_id, timeout: 0 });
    await d.call('RemoveContainer', { container_id });
    await d.call('StopPodSandbox', { pod_sandbox_id });
    await d.call('RemovePodSandbox', { pod_sandbox_id });
  })().catch(() => undefined);
  await new Promise((r) => setTimeout(r, delayMs));
  await d.kill();
  await workload;
  d = await startDaemon({ config: config(), dir: root });
  try {
    const pods = (await d.call('ListPodSandbox', {})).items;
    const containers = (await d.call('ListContainers', {})).containers;
    for (const c of containers) {
      const { status } = await d.call('ContainerStatus', { container_id: c.id });
      assert.ok(['CONTAINER_CREATED', 'CONTAINER_RUNNING', 'CONTAINER_EXITED'].includes(status.state), status.state);
    }
    assert.ok(pods.length <= 1);
    await removeEverything(d);
    assert.deepEqual((await d.call('ListContainers', {})).containers, []);
    assert.deepEqual((await d.call('ListPodSandbox', {})).items, []);
    // A pull interrupted at any point completes on the next try.
    assert.match((await d.call('PullImage', { image: { image } })).image_ref, /^sha256:/);
  } finally {
    await d.stop();
  }
  assert.deepEqual(await leftovers(d), [], `after a kill ${delayMs} ms into ${step}`);
  await rm(root, { recursive: true, force: true });
}

for (const step of ['pull', 'runp', 'start', 'full']) {
  test(`kill -9 during ${step}: restart reconciles and everything can be removed`, async () => {
    for (const delay of step === 'pull' ? [5, 40] : [30, 150, 400, 900]) await round(delay, step);
  });
}

test('a container created before a restart starts after it, whether or not the runtime had made its process', { timeout: 120_000 }, async () => {
  const root = join(dir, 'created-restart');
  await mkdir(root, { recursive: true });
  const runc = (...args: string[]) =>
    execFileSync('runc', ['--root', join(root, 'state', 'runtime', 'runc'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  let d = await startDaemon({ config: config(), dir: root });
  const pod = podConfig('created');
  await d.call('PullImage', { image: { image } });
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: pod });
  const ids: string[] = [];
  for (const name of ['made', 'unmade']) {
    const { container_id } = await d.call('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name }, image: { image }, command: ['sleep', '300'], log_path: `${name}.log` },
      sandbox_config: pod,
    });
    ids.push(container_id);
  }
  // The runtime makes each process after CreateContainer answered; wait until it has.
  for (const id of ids) {
    for (let i = 0; i < 200 && !/"status": "created"/.test(safe(() => runc('state', id))); i++) await new Promise((r) => setTimeout(r, 25));
  }
  await d.stop();
  // One container as if tscri had stopped before its runtime process was made: no conmon, no runc state.
  const unmade = ids[1]!;
  const conmonPid = Number(await readFile(join(root, 'state', 'containers', unmade, 'conmon.pid'), 'utf8'));
  process.kill(conmonPid, 'SIGKILL');
  runc('delete', '--force', unmade);
  d = await startDaemon({ config: config(), dir: root });
  try {
    for (const id of ids) {
      assert.equal((await d.call('ContainerStatus', { container_id: id })).status.state, 'CONTAINER_CREATED');
      await d.call('StartContainer', { container_id: id });
      assert.equal((await d.call('ContainerStatus', { container_id: id })).status.state, 'CONTAINER_RUNNING');
      const { exit_code } = await d.call('ExecSync', { container_id: id, cmd: ['true'], timeout: 10 });
      assert.equal(exit_code, 0);
    }
    await removeEverything(d);
  } finally {
    await d.stop();
  }
  assert.deepEqual(await leftovers(d), []);
  await rm(root, { recursive: true, force: true });
});

function safe(fn: () => string): string {
  try {
    return fn();
  } catch {
    return '';
  }
}

test('kill -9 right after RemoveContainer answered: the next start removes what the container left', async () => {
  const root = join(dir, 'round-after-remove');
  await mkdir(root, { recursive: true });
  let d = await startDaemon({ config: config(), dir: root });
  const pod = podConfig('after-remove');
  await d.call('PullImage', { image: { image } });
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: pod });
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id,
    config: { metadata: { name: 'c' }, image: { image }, command: ['sleep', '300'], log_path: 'c.log' },
    sandbox_config: pod,
  });
  await d.call('StartContainer', { container_id });
  await d.call('StopContainer', { container_id, timeout: 0 });
  await d.call('RemoveContainer', { container_id });
  await d.kill();
  d = await startDaemon({ config: config(), dir: root });
  try {
    assert.deepEqual((await d.call('ListContainers', {})).containers, []);
    await waitGone(join(d.state, 'containers', container_id), 'the bundle is removed at start');
    await waitGone(join(d.root, 'snapshots', 'leases', `${container_id}.json`), 'the lease is ended at start');
    await removeEverything(d);
  } finally {
    await d.stop();
  }
  assert.deepEqual(await leftovers(d), []);
  await rm(root, { recursive: true, force: true });
});
