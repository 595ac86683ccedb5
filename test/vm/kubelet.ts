// Runs inside the cgroup-v2-only VM with swap (see test/integration/kubelet.test.ts):
// kubelet-shaped pods under pod cgroups made as kubelet makes them, and what
// lands in cgroup v2: hugetlb limits for every page size, memory.oom.group on
// containers and never on the pod cgroup, LimitedSwap as kubelet computes it
// (request / node memory × node swap, Burstable only) and NoSwap, one
// container's OOM leaving its neighbours running, a shared pid namespace pod
// with limits, and sandbox garbage collection beside a newer attempt.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { startDaemon } from '../helpers/daemon.ts';
import {
  containerConfig,
  limitedSwap,
  machine,
  podCgroup,
  podLogDirectory,
  podSandboxConfig,
  type KubeContainer,
  type KubePod,
  type Qos,
  type SwapBehavior,
} from '../helpers/kubelet.ts';
import { createCgroup } from '../../src/cgroups/cgroups.ts';

const MiB = 1024 * 1024;
const started = Date.now();
const phase = (name: string) => process.stderr.write(`vm: ${name} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
// The VM's /tmp is an overlay, which cannot hold overlay upper dirs: use a tmpfs.
const scratch = '/run/tscri-vm';
await mkdir(scratch, { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', scratch]);
process.env.TMPDIR = scratch;
const node = machine();
const results: Record<string, any> = { machine: node };
const cgroupRoot = '/tscri-vm-kubelet';
const registry = await startRegistry({ startTimeoutMs: 600_000 });
phase('registry serving');
const d = await startDaemon({ config: `default_cgroup_parent = "${cgroupRoot}/tscri"\n[cni]\nconf_dir = "/nonexistent"\n`, startTimeoutMs: 600_000 });
phase('tscri serving');

const read = (dir: string, file: string) =>
  readFile(join('/sys/fs/cgroup', dir, file), 'utf8').then(
    (t) => t.trim(),
    () => 'absent',
  );

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
  const imageName = `${registry.host}/vm/busybox:v1`;
  await d.call('PullImage', { image: { image: imageName } });
  const imageId = (await d.call('ImageStatus', { image: { image: imageName } })).image.id;
  phase('image pulled');

  const kubeletPod = async (name: string, qos: Qos, extra: Partial<KubePod> = {}): Promise<KubePod> => {
    const uid = randomBytes(8).toString('hex');
    const pod: KubePod = {
      name,
      namespace: 'vm',
      uid,
      attempt: 0,
      qos,
      cgroupRoot,
      logRoot: join(scratch, 'pods-log'),
      podDir: join(scratch, 'pods', uid),
      hostNetwork: true,
      ...extra,
    };
    await createCgroup(podCgroup(pod));
    await mkdir(podLogDirectory(pod), { recursive: true });
    await mkdir(pod.podDir, { recursive: true });
    await writeFile(join(pod.podDir, 'etc-hosts'), '127.0.0.1\tlocalhost\n');
    return pod;
  };
  const runPod = async (pod: KubePod) => (await d.call('RunPodSandbox', { config: podSandboxConfig(pod, node) })).pod_sandbox_id as string;
  const start = async (pod: KubePod, podId: string, c: Omit<KubeContainer, 'imageId' | 'image'>, swap: SwapBehavior) => {
    const built = containerConfig(pod, { imageId, image: imageName, ...c }, node, swap);
    await mkdir(dirname(built.hostFiles.terminationLog), { recursive: true });
    await writeFile(built.hostFiles.terminationLog, '');
    const { container_id } = await d.call('CreateContainer', { pod_sandbox_id: podId, config: built.config, sandbox_config: podSandboxConfig(pod, node) });
    await d.call('StartContainer', { container_id });
    const { info } = await d.call('ContainerStatus', { container_id, verbose: true });
    return { id: container_id as string, cgroup: JSON.parse(info.info).runtimeSpec.linux.cgroupsPath as string, sent: built.config.linux.resources };
  };
  const files = async (cgroup: string) => {
    const out: Record<string, string> = {};
    for (const f of ['memory.max', 'memory.swap.max', 'memory.oom.group', 'cpu.max', 'cpu.weight']) out[f] = await read(cgroup, f);
    for (const size of node.hugePageSizes) out[`hugetlb.${size}.max`] = await read(cgroup, `hugetlb.${size}.max`);
    return out;
  };
  const state = async (id: string) => (await d.call('ContainerStatus', { container_id: id })).status;

  // A Burstable pod under LimitedSwap: the sandbox resources kubelet sends carry memory.oom.group.
  const pod = await kubeletPod('burst', 'burstable', { cpuRequestMilli: 200, cpuLimitMilli: 1000, memoryLimit: 96 * MiB });
  const podBefore = { 'memory.max': await read(podCgroup(pod), 'memory.max'), 'memory.oom.group': await read(podCgroup(pod), 'memory.oom.group') };
  const podId = await runPod(pod);
  results.podSandboxResources = podSandboxConfig(pod, node).linux.resources;
  const limited = await start(
    pod,
    podId,
    { name: 'limited', command: ['sleep', '600'], cpuRequestMilli: 100, cpuLimitMilli: 500, memoryRequest: 32 * MiB, memoryLimit: 64 * MiB },
    'LimitedSwap',
  );
  results.limited = { files: await files(limited.cgroup), expectedSwap: String(limitedSwap(32 * MiB, node)), sent: limited.sent };
  const noswap = await start(
    pod,
    podId,
    { name: 'noswap', command: ['sleep', '600'], cpuRequestMilli: 100, memoryRequest: 16 * MiB, memoryLimit: 32 * MiB },
    'NoSwap',
  );
  results.noswap = await files(noswap.cgroup);
  results.pod = {
    before: podBefore,
    after: { 'memory.max': await read(podCgroup(pod), 'memory.max'), 'memory.oom.group': await read(podCgroup(pod), 'memory.oom.group') },
  };
  phase('burstable pod running');

  // One container runs out of memory: only it dies.
  const hog = await start(
    pod,
    podId,
    {
      name: 'hog',
      command: ['sh', '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived; sleep 600'],
      memoryRequest: 16 * MiB,
      memoryLimit: 32 * MiB,
    },
    'NoSwap',
  );
  const hogStatus = await waitFor('the hog to exit', async () => {
    const s = await state(hog.id);
    return s.state === 'CONTAINER_EXITED' ? s : undefined;
  });
  results.oom = { hog: hogStatus.reason, limited: (await state(limited.id)).state, noswap: (await state(noswap.id)).state };
  phase('oom checked');

  // Guaranteed containers get no swap even under LimitedSwap.
  const gpod = await kubeletPod('guaranteed', 'guaranteed', { cpuRequestMilli: 100, cpuLimitMilli: 100, memoryLimit: 32 * MiB });
  const gpodId = await runPod(gpod);
  const guaranteed = await start(
    gpod,
    gpodId,
    { name: 'g', command: ['sleep', '600'], cpuRequestMilli: 100, cpuLimitMilli: 100, memoryRequest: 32 * MiB, memoryLimit: 32 * MiB },
    'LimitedSwap',
  );
  results.guaranteed = { files: await files(guaranteed.cgroup), sent: guaranteed.sent.unified };
  phase('guaranteed pod running');

  // A shared pid namespace with limits on cgroup v2: the infra process must not sit in the pod cgroup.
  const spod = await kubeletPod('shared', 'burstable', { shareProcessNamespace: true, memoryLimit: 32 * MiB });
  const spodId = await runPod(spod);
  const shared = await start(spod, spodId, { name: 's', command: ['sleep', '600'], memoryRequest: 16 * MiB, memoryLimit: 32 * MiB }, 'NoSwap');
  results.shared = {
    state: (await state(shared.id)).state,
    memoryMax: await read(shared.cgroup, 'memory.max'),
    podProcs: await read(podCgroup(spod), 'cgroup.procs'),
  };
  // Sandbox garbage collection: the old attempt goes while a newer one runs in the same pod cgroup.
  await d.call('StopPodSandbox', { pod_sandbox_id: spodId });
  const next = { ...spod, attempt: 1 };
  const nextId = await runPod(next);
  const again = await start(next, nextId, { name: 's', command: ['sleep', '600'], restartCount: 1, memoryRequest: 16 * MiB, memoryLimit: 32 * MiB }, 'NoSwap');
  await d.call('RemovePodSandbox', { pod_sandbox_id: spodId });
  results.gc = {
    newState: (await state(again.id)).state,
    oldCgroupGone: !existsSync(join('/sys/fs/cgroup', shared.cgroup)),
    newCgroup: existsSync(join('/sys/fs/cgroup', again.cgroup)),
    podCgroup: existsSync(join('/sys/fs/cgroup', podCgroup(spod))),
  };
  phase('shared pid pod and gc checked');

  for (const { items } of [await d.call('ListPodSandbox', {})]) {
    for (const item of items) {
      await d.call('StopPodSandbox', { pod_sandbox_id: item.id });
      await d.call('RemovePodSandbox', { pod_sandbox_id: item.id });
    }
  }
  results.podCgroupsAfterRemoval = [pod, gpod, spod].map((p) => existsSync(join('/sys/fs/cgroup', podCgroup(p))));
} catch (err) {
  results.error = (err as Error).stack ?? String(err);
} finally {
  await d.cleanup();
  await registry.stop();
}
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
