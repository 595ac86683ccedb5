// Soak: run and remove many pods, each with a container, and check that the
// host is left as it was found (mounts, namespaces, veths, IPAM, iptables,
// processes, cgroups, files). TSCRI_SOAK_PODS sets the count (50 by default;
// 500 for the long run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestDaemon } from '../helpers/daemon.ts';
import type { TestNetwork } from '../helpers/cni.ts';
import { startPodFixture, type PodFixture } from '../helpers/pod-fixture.ts';

const PODS = Number(process.env.TSCRI_SOAK_PODS ?? 50);
const PARALLEL = 5;
let f: PodFixture;
let d: TestDaemon;
let network: TestNetwork;
let image: string;
let tag: string;
let parent: string;

before(async () => {
  f = await startPodFixture({ name: 'soak' });
  ({ d, image, tag, parent } = f);
  network = f.network!;
});

after(async () => {
  // A failed run still removes what it made: every pod left, then the fixture.
  const left = await d
    ?.call('ListPodSandbox', {})
    .then((r: any) => r.items)
    .catch(() => []);
  for (const pod of left ?? []) {
    await d.call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch((err: unknown) => console.error(`soak cleanup: ${(err as Error).message}`));
    f.pods.push(pod.id);
  }
  await f?.cleanup();
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
