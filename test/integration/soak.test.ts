// Soak: run and remove many pods, each with a container, and check that the
// host is left as it was found (mounts, namespaces, veths, IPAM, iptables,
// processes, cgroups, files). TSCRI_SOAK_PODS sets the count (50 by default;
// 500 for the long run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

const PODS = Number(process.env.TSCRI_SOAK_PODS ?? 50);
const PARALLEL = 5;
let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let image: string;
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-soak-${tag}`;

before(async () => {
  registry = await startRegistry();
  network = await makeTestNetwork();
  d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n${network.toml}` });
  await pushBusybox(registry.url, 'soak/busybox', 'v1');
  image = `${registry.host}/soak/busybox:v1`;
  await d.call('PullImage', { image: { image } });
});

after(async () => {
  // A failed run still removes what it made, each step whatever the one before did.
  const steps: Array<() => Promise<unknown>> = [
    async () => {
      for (const pod of (await d.call('ListPodSandbox', {})).items) {
        await d.call('StopPodSandbox', { pod_sandbox_id: pod.id });
        await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
      }
    },
    () => d.cleanup(),
    () => network.cleanup(),
    () => registry.stop(),
    () => removeCgroup(parent),
  ];
  for (const step of steps) await step().catch((err: unknown) => console.error(`soak cleanup: ${(err as Error).message}`));
});

async function lifecycle(i: number): Promise<void> {
  const config = { metadata: { name: `soak-${i}`, namespace: 'soak', uid: `soak-${i}-${tag}`, attempt: 0 }, linux: {} };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id,
    config: { metadata: { name: 'c' }, image: { image }, command: ['sleep', '300'] },
    sandbox_config: config,
  });
  await d.call('StartContainer', { container_id });
  await d.call('StopContainer', { container_id, timeout: 0 });
  await d.call('RemoveContainer', { container_id });
  await d.call('StopPodSandbox', { pod_sandbox_id });
  await d.call('RemovePodSandbox', { pod_sandbox_id });
}

test(`${PODS} pods with a container each are run and removed, leaving the host as it was`, async () => {
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < PODS) await lifecycle(next++);
    }),
  );
  assert.deepEqual((await d.call('ListPodSandbox', {})).items, []);
  assert.deepEqual((await d.call('ListContainers', {})).containers, []);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(d.dir));
  assert.deepEqual(mounts, []);
  assert.deepEqual(await network.leftovers([], { othersRunning: false }), []);
  const procs = execFileSync('sh', ['-c', `ps -eo args | grep -E "[c]onmon|[c]atatonit|[r]unc init" | grep -F "${d.dir}" || true`], {
    encoding: 'utf8',
  }).trim();
  assert.equal(procs, '');
  for (const sub of ['containers', 'pods']) {
    const path = join(d.state, sub);
    assert.deepEqual(existsSync(path) ? await readdir(path) : [], [], `${path} is empty`);
  }
  for (const kind of ['sandboxes', 'containers']) assert.deepEqual(await readdir(join(d.root, kind)), []);
  assert.deepEqual(await readdir(join(d.root, 'snapshots', 'containers')), []);
  const podCgroups = await readdir(`/sys/fs/cgroup/memory${parent}`).catch(() => [] as string[]);
  assert.deepEqual(
    podCgroups.filter((n) => n.startsWith('pod-')),
    [],
  );
});
