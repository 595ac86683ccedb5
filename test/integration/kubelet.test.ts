// tscri driven as kubelet drives a runtime: pod and container requests shaped
// as kuberuntime builds them (test/helpers/kubelet.ts) under a pod cgroup the
// test makes as kubelet would (kubepods/<qos>/pod<uid> below a test-owned
// root, cgroupfs driver), then each effect checked on the system: limits in
// the cgroups, hugepage limits for every page size, mounts of /etc/hosts, the
// termination log and emptyDirs, logs at <name>/<attempt>.log, HOSTNAME,
// image_ref, statuses for the evented PLEG, sandbox garbage collection beside
// a newer attempt, and the proto defaults of namespace options.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { criStream } from '../helpers/cri-client.ts';
import { containerConfig, machine, podCgroup, podLogDirectory, podSandboxConfig, type KubeContainer, type KubePod, type Qos } from '../helpers/kubelet.ts';
import { cgroupDirs, createCgroup, hierarchies, removeCgroup } from '../../src/cgroups/cgroups.ts';
import { runVmScript, vmSkip } from '../helpers/vm.ts';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const tag = randomBytes(3).toString('hex');
/** Stands in for the node's cgroup root: everything kubelet would make goes below it. */
const cgroupRoot = `/tscri-kubelet-${tag}`;
const node = machine();
let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let dir: string;
let imageId: string;
let imageName: string;
let repoDigest: string;

before(async () => {
  registry = await startRegistry();
  network = await makeTestNetwork();
  dir = await mkdtemp(join(tmpdir(), 'tscri-kubelet-'));
  d = await startDaemon({ config: `default_cgroup_parent = "${cgroupRoot}/tscri"\n${network.toml}` });
  const pushed = await pushBusybox(registry.url, 'kubelet/busybox', 'v1');
  imageName = `${registry.host}/kubelet/busybox:v1`;
  repoDigest = `${registry.host}/kubelet/busybox@${pushed.manifestDigest}`;
  await d.call('PullImage', { image: { image: imageName } });
  imageId = (await d.call('ImageStatus', { image: { image: imageName } })).image.id;
});

after(async () => {
  const { items } = (await d?.call('ListPodSandbox', {}).catch(() => undefined)) ?? { items: [] };
  for (const item of items) await d.call('RemovePodSandbox', { pod_sandbox_id: item.id }).catch(() => undefined);
  await d?.cleanup();
  await removeCgroup(cgroupRoot).catch((err) => console.error('cleanup:', err));
  await network?.cleanup();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A pod as kubelet prepares it before RunPodSandbox: its cgroup, log directory and pod directory. */
async function kubeletPod(name: string, qos: Qos, extra: Partial<KubePod> = {}): Promise<KubePod> {
  const pod: KubePod = {
    name,
    namespace: 'kube-test',
    uid: randomBytes(8).toString('hex'),
    attempt: 0,
    qos,
    cgroupRoot,
    logRoot: join(dir, 'pods-log'),
    podDir: '',
    ...extra,
  };
  pod.podDir = join(dir, 'pods', pod.uid);
  await createCgroup(podCgroup(pod));
  await mkdir(podLogDirectory(pod), { recursive: true, mode: 0o755 });
  await mkdir(pod.podDir, { recursive: true });
  await writeFile(join(pod.podDir, 'etc-hosts'), `# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.0.0.1\t${pod.name} # ${pod.uid}\n`);
  return pod;
}

async function runPod(pod: KubePod): Promise<string> {
  return (await d.call('RunPodSandbox', { config: podSandboxConfig(pod, node) })).pod_sandbox_id;
}

/** CreateContainer and StartContainer as kubelet does them, with the host files kubelet makes first. */
async function startContainer(pod: KubePod, podId: string, c: Omit<KubeContainer, 'imageId' | 'image'>, swap: 'NoSwap' | 'LimitedSwap' = 'NoSwap') {
  const built = containerConfig(pod, { imageId, image: imageName, ...c }, node, swap);
  await mkdir(dirname(built.hostFiles.terminationLog), { recursive: true });
  await writeFile(built.hostFiles.terminationLog, '');
  for (const path of Object.values(built.hostFiles.emptyDirs)) await mkdir(path, { recursive: true, mode: 0o777 });
  const { container_id } = await d.call('CreateContainer', { pod_sandbox_id: podId, config: built.config, sandbox_config: podSandboxConfig(pod, node) });
  await d.call('StartContainer', { container_id });
  return { id: container_id, built };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function spec(containerId: string): Promise<any> {
  const { info } = await d.call('ContainerStatus', { container_id: containerId, verbose: true });
  return JSON.parse(info.info).runtimeSpec;
}

/** Every directory of a cgroup, also the copy runc makes in a hybrid host's unified mount. */
function everyDir(fsPath: string): string[] {
  const unified = hierarchies()
    .filter((h) => h.version === 'v2' && h.mount !== '/sys/fs/cgroup')
    .map((h) => join(h.mount, fsPath));
  return [...cgroupDirs(fsPath), ...unified];
}

const v1File = (controller: string, path: string, file: string) => readFileSync(join('/sys/fs/cgroup', controller, path, file), 'utf8').trim();

test('a Burstable pod as kubelet sends it: hugepage limits for every page size, limits, mounts, logs, HOSTNAME, image_ref', async () => {
  const pod = await kubeletPod('web', 'burstable', { cpuRequestMilli: 100, cpuLimitMilli: 500, memoryLimit: 64 * MiB, labels: { app: 'web' } });
  const podFile = node.cgroupV2 ? ['', 'memory.max'] : ['memory', 'memory.limit_in_bytes'];
  const podLimitBefore = readFileSync(join('/sys/fs/cgroup', podFile[0]!, podCgroup(pod), podFile[1]!), 'utf8');
  const podId = await runPod(pod);
  // kubelet's pod cgroup is kubelet's: tscri writes none of the sandbox resources into it.
  assert.equal(readFileSync(join('/sys/fs/cgroup', podFile[0]!, podCgroup(pod), podFile[1]!), 'utf8'), podLimitBefore);
  const { id, built } = await startContainer(pod, podId, {
    name: 'app',
    command: [
      'sh',
      '-c',
      'echo "host=$HOSTNAME"; grep -c Kubernetes-managed /etc/hosts; echo "terminated on purpose" > /dev/termination-log; echo kept > /data/file; sleep 300',
    ],
    cpuRequestMilli: 100,
    cpuLimitMilli: 500,
    memoryRequest: 32 * MiB,
    memoryLimit: 64 * MiB,
    emptyDirs: { data: '/data' },
  });
  const log = join(podLogDirectory(pod), 'app', '0.log');
  const text = await waitFor('the container log', async () => {
    const t = await readFile(log, 'utf8').catch(() => '');
    return t.includes('host=') && /stdout F \d/.test(t) ? t : undefined;
  });
  // HOSTNAME is the pod's hostname, as containerd and CRI-O set it.
  assert.match(text, /stdout F host=web$/m);
  assert.match(text, /stdout F 1$/m, "kubelet's /etc/hosts is mounted");
  await waitFor('the termination message', async () =>
    (await readFile(built.hostFiles.terminationLog, 'utf8')) === 'terminated on purpose\n' ? true : undefined,
  );
  await waitFor('the emptyDir file', async () =>
    (await readFile(join(built.hostFiles.emptyDirs.data!, 'file'), 'utf8').catch(() => '')) === 'kept\n' ? true : undefined,
  );

  const s = await spec(id);
  const ctrCgroup = s.linux.cgroupsPath;
  assert.ok(ctrCgroup.startsWith(`${podCgroup(pod)}/`), `the container cgroup ${ctrCgroup} is under kubelet's pod cgroup`);
  // Hugepage limits (0 for every size) reach runc where the hugetlb controller can take them.
  const hugetlbV1 = hierarchies().some((h) => h.version === 'v1' && h.controllers.includes('hugetlb'));
  assert.equal(s.linux.resources.hugepageLimits?.length ?? 0, hugetlbV1 ? node.hugePageSizes.length : 0);
  if (!node.cgroupV2) {
    assert.equal(v1File('memory', ctrCgroup, 'memory.limit_in_bytes'), String(64 * MiB));
    assert.equal(v1File('memory', ctrCgroup, 'memory.memsw.limit_in_bytes'), String(64 * MiB), 'NoSwap on v1: memory+swap = memory');
    assert.equal(v1File('cpu', ctrCgroup, 'cpu.shares'), '102');
    assert.equal(v1File('cpu', ctrCgroup, 'cpu.cfs_quota_us'), '50000');
    assert.equal(v1File('cpu', ctrCgroup, 'cpu.cfs_period_us'), '100000');
  }

  const { status: cs } = await d.call('ContainerStatus', { container_id: id });
  assert.equal(cs.state, 'CONTAINER_RUNNING');
  // kubelet shows image_ref as status.containerStatuses[].imageID: the repo digest.
  assert.equal(cs.image_ref, repoDigest);
  assert.equal(cs.image_id, imageId);
  assert.equal(cs.log_path, log);
  assert.equal(cs.labels['io.kubernetes.pod.uid'], pod.uid);
  assert.equal(cs.annotations['io.kubernetes.container.terminationMessagePath'], '/dev/termination-log');
  const listed = (await d.call('ListContainers', { filter: { label_selector: { 'io.kubernetes.pod.uid': pod.uid } } })).containers;
  assert.deepEqual(
    listed.map((c: any) => c.id),
    [id],
  );
  // The image id stays in the listing: kubelet's image garbage collection matches it against ListImages.
  assert.equal(listed[0].image_ref, imageId);

  await d.call('StopPodSandbox', { pod_sandbox_id: podId });
  await d.call('RemovePodSandbox', { pod_sandbox_id: podId });
  for (const path of everyDir(ctrCgroup)) assert.ok(!existsSync(path), `${path} is removed with its container`);
  assert.ok(
    cgroupDirs(podCgroup(pod)).every((p) => existsSync(p)),
    "kubelet's pod cgroup stays: it is kubelet's to remove",
  );
});

test('sandbox garbage collection: an old attempt is removed while the new attempt runs in the same pod cgroup', async () => {
  const pod = await kubeletPod('gc', 'burstable', { shareProcessNamespace: true });
  const oldId = await runPod(pod);
  const old = await startContainer(pod, oldId, { name: 'app', command: ['sleep', '300'], memoryLimit: 32 * MiB, memoryRequest: 16 * MiB });
  const oldCgroup = (await spec(old.id)).linux.cgroupsPath;
  await d.call('StopPodSandbox', { pod_sandbox_id: oldId });

  const next = { ...pod, attempt: 1 };
  const newId = await runPod(next);
  const fresh = await startContainer(next, newId, { name: 'app', command: ['sleep', '300'], restartCount: 1, memoryLimit: 32 * MiB, memoryRequest: 16 * MiB });
  const freshCgroup = (await spec(fresh.id)).linux.cgroupsPath;
  await d.call('RemovePodSandbox', { pod_sandbox_id: oldId });

  assert.equal((await d.call('ContainerStatus', { container_id: fresh.id })).status.state, 'CONTAINER_RUNNING');
  assert.ok(
    cgroupDirs(freshCgroup).every((p) => existsSync(p)),
    'the running attempt keeps its container cgroup',
  );
  assert.ok(
    cgroupDirs(podCgroup(pod)).every((p) => existsSync(p)),
    'the pod cgroup stays',
  );
  for (const path of everyDir(oldCgroup)) assert.ok(!existsSync(path), `${path} of the old attempt is gone`);
  const ids = (await d.call('ListPodSandbox', { filter: { label_selector: { 'io.kubernetes.pod.uid': pod.uid } } })).items.map((i: any) => i.id);
  assert.deepEqual(ids, [newId]);
  // The new attempt's container still answers.
  const out = await d.call('ExecSync', { container_id: fresh.id, cmd: ['echo', 'alive'], timeout: 10 });
  assert.equal(Buffer.from(out.stdout).toString(), 'alive\n');

  await d.call('StopPodSandbox', { pod_sandbox_id: newId });
  await d.call('RemovePodSandbox', { pod_sandbox_id: newId });
  for (const path of everyDir(freshCgroup)) assert.ok(!existsSync(path), `${path} is gone`);
  assert.ok(cgroupDirs(podCgroup(pod)).every((p) => existsSync(p)));
});

test('the root cgroup is no pod cgroup: cgroup_parent "/" is refused', async () => {
  for (const parent of ['/', '//']) {
    const pod = podSandboxConfig(
      {
        name: 'root',
        namespace: 'kube-test',
        uid: randomBytes(8).toString('hex'),
        attempt: 0,
        qos: 'besteffort',
        cgroupRoot,
        logRoot: join(dir, 'pods-log'),
        podDir: dir,
      },
      node,
    );
    pod.linux.cgroup_parent = parent;
    await assert.rejects(d.call('RunPodSandbox', { config: pod }), (err: any) => err.code === status.INVALID_ARGUMENT && /root cgroup/.test(err.details));
  }
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
});

test('evented PLEG: events and PodSandboxStatus carry every container of the pod and a timestamp in nanoseconds', async () => {
  const events = criStream(d.socket, 'GetContainerEvents');
  try {
    const pod = await kubeletPod('pleg', 'besteffort');
    const start = Date.now() * 1e6;
    const podId = await runPod(pod);
    const a = await startContainer(pod, podId, { name: 'a', command: ['sleep', '300'] });
    const b = await startContainer(pod, podId, { name: 'b', command: ['sleep', '300'] });
    const seen: any[] = [];
    const until = async (type: string, id: string) => {
      for (;;) {
        const e = await events.next();
        if (e.pod_sandbox_status?.metadata?.uid !== pod.uid) continue;
        seen.push(e);
        if (e.container_event_type === type && e.container_id === id) return e;
      }
    };
    const bStarted = await until('CONTAINER_STARTED_EVENT', b.id);
    const end = Date.now() * 1e6;
    for (const e of seen) {
      assert.ok(e.created_at >= start && e.created_at <= end, `event time ${e.created_at} is nanoseconds of now`);
      assert.ok(
        e.containers_statuses.some((c: any) => c.id === e.container_id),
        `${e.container_event_type} carries its container`,
      );
      assert.equal(e.pod_sandbox_status.id, podId);
    }
    assert.deepEqual(
      bStarted.containers_statuses.map((c: any) => [c.id, c.state]).sort(),
      [
        [a.id, 'CONTAINER_RUNNING'],
        [b.id, 'CONTAINER_RUNNING'],
      ].sort(),
    );

    // Non-verbose PodSandboxStatus, what kubelet's GetPodStatus reads: with a timestamp, the complete list.
    const t0 = Date.now() * 1e6;
    const res = await d.call('PodSandboxStatus', { pod_sandbox_id: podId });
    const t1 = Date.now() * 1e6;
    assert.ok(res.timestamp >= t0 && res.timestamp <= t1, `timestamp ${res.timestamp} is nanoseconds of the call`);
    assert.deepEqual(res.containers_statuses.map((c: any) => c.id).sort(), [a.id, b.id].sort());
    assert.equal(res.containers_statuses.find((c: any) => c.id === a.id).labels['io.kubernetes.container.name'], 'a');

    await d.call('StopContainer', { container_id: a.id, timeout: 0 });
    const stopped = await until('CONTAINER_STOPPED_EVENT', a.id);
    assert.equal(stopped.containers_statuses.find((c: any) => c.id === a.id).state, 'CONTAINER_EXITED');
    assert.equal(stopped.containers_statuses.length, 2);

    // A newer attempt of the pod: its status lists the old attempt's containers too, as kubelet lists them by pod uid.
    await d.call('StopPodSandbox', { pod_sandbox_id: podId });
    const next = { ...pod, attempt: 1 };
    const nextId = await runPod(next);
    const c = await startContainer(next, nextId, { name: 'a', command: ['sleep', '300'], restartCount: 1 });
    const all = await d.call('PodSandboxStatus', { pod_sandbox_id: nextId });
    assert.deepEqual(all.containers_statuses.map((x: any) => x.id).sort(), [a.id, b.id, c.id].sort());
    assert.ok(all.timestamp > 0);

    await d.call('RemovePodSandbox', { pod_sandbox_id: podId });
    const deleted = await until('CONTAINER_DELETED_EVENT', a.id);
    assert.ok(!deleted.containers_statuses.some((x: any) => x.id === a.id));
    await d.call('StopPodSandbox', { pod_sandbox_id: nextId });
    await d.call('RemovePodSandbox', { pod_sandbox_id: nextId });
  } finally {
    events.close();
  }
});

test("a pod and a container without namespace_options share the pod's namespaces, pid included (the proto zero value POD)", async () => {
  const uid = randomBytes(8).toString('hex');
  const config = {
    metadata: { name: 'plain', namespace: 'kube-test', uid, attempt: 0 },
    hostname: 'plain',
    log_directory: join(dir, 'pods-log', uid),
    linux: { cgroup_parent: `${cgroupRoot}/plain-${uid}` },
  };
  const podId = (await d.call('RunPodSandbox', { config })).pod_sandbox_id;
  const st = await d.call('PodSandboxStatus', { pod_sandbox_id: podId, verbose: true });
  assert.deepEqual(st.status.linux.namespaces.options, { network: 'POD', pid: 'POD', ipc: 'POD', target_id: '', userns_options: null });
  const info = JSON.parse(st.info.info);
  assert.equal(info.pidOf, 'infra', 'a shared pid namespace has its infra process');
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id: podId,
    config: { metadata: { name: 'c' }, image: { image: imageName }, command: ['sleep', '300'], log_path: 'c/0.log' },
    sandbox_config: config,
  });
  await d.call('StartContainer', { container_id });
  const out = await d.call('ExecSync', { container_id, cmd: ['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "'], timeout: 10 });
  assert.match(Buffer.from(out.stdout).toString(), /catatonit/, "pid 1 of the container is the pod's infra process");
  await d.call('StopPodSandbox', { pod_sandbox_id: podId });
  await d.call('RemovePodSandbox', { pod_sandbox_id: podId });
  assert.ok(!existsSync(`/sys/fs/cgroup/pids${cgroupRoot}/plain-${uid}`), 'a cgroup_parent tscri had to make goes with the pod');
});

test('pods sharing a pid namespace start in parallel under cgroup parents that do not exist yet', async () => {
  const fresh = `${cgroupRoot}/fresh-${randomBytes(3).toString('hex')}`;
  const configs = Array.from({ length: 6 }, (_, i) => {
    const uid = randomBytes(8).toString('hex');
    return {
      metadata: { name: `par${i}`, namespace: 'kube-test', uid, attempt: 0 },
      log_directory: join(dir, 'pods-log', uid),
      linux: { cgroup_parent: `${fresh}/kubepods/pod${uid}`, security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
    };
  });
  // A v1 cpuset made by one call and found by another must be seeded before the infra process joins it.
  const ids = await Promise.all(configs.map(async (config) => (await d.call('RunPodSandbox', { config })).pod_sandbox_id));
  for (const id of ids) assert.equal(JSON.parse((await d.call('PodSandboxStatus', { pod_sandbox_id: id, verbose: true })).info.info).pidOf, 'infra');
  for (const id of ids) {
    await d.call('StopPodSandbox', { pod_sandbox_id: id });
    await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  }
});

test('cgroup v2 with swap (VM): hugetlb limits, memory.oom.group per container only, LimitedSwap and NoSwap as kubelet computes them, one OOM kills one container', {
  skip: vmSkip,
}, (t) => {
  const run = runVmScript(fileURLToPath(new URL('../vm/kubelet.ts', import.meta.url)), ['--mem', '2G', '--swap', '512M']);
  for (const note of run.notes) t.diagnostic(note);
  assert.ok(run.result, run.failure);
  const r = run.result!;
  assert.equal(r.error, undefined, r.error);
  const vm = r.machine;
  assert.ok(vm.cgroupV2 && vm.swapCapacity > 0 && vm.hugePageSizes.length > 0, JSON.stringify(vm));
  // Every page size gets its limit (0: the pod asked for none), and runc creates the container.
  for (const files of [r.limited.files, r.noswap, r.guaranteed.files]) {
    for (const size of vm.hugePageSizes) assert.equal(files[`hugetlb.${size}.max`], '0', size);
    assert.equal(files['memory.oom.group'], '1');
  }
  // kubelet sends memory.oom.group with the sandbox resources; the pod cgroup (kubelet's) is left as it was.
  assert.equal(r.podSandboxResources.unified['memory.oom.group'], '1');
  assert.deepEqual(r.pod.after, r.pod.before);
  assert.equal(r.pod.after['memory.oom.group'], '0');
  // LimitedSwap, Burstable: request / node memory × node swap (the kernel keeps whole pages).
  const swap = Math.trunc(((32 * MiB) / vm.memoryCapacity) * vm.swapCapacity);
  assert.equal(r.limited.sent.unified['memory.swap.max'], String(swap));
  assert.equal(r.limited.files['memory.swap.max'], String(Math.floor(swap / 4096) * 4096));
  assert.equal(r.limited.files['memory.max'], String(64 * MiB));
  assert.equal(r.limited.files['cpu.max'], '50000 100000');
  // NoSwap, and Guaranteed under LimitedSwap: no swap.
  assert.equal(r.noswap['memory.swap.max'], '0');
  assert.equal(r.guaranteed.sent['memory.swap.max'], '0');
  assert.equal(r.guaranteed.files['memory.swap.max'], '0');
  assert.equal(r.guaranteed.files['cpu.max'], '10000 100000');
  // The container over its limit dies alone.
  assert.deepEqual(r.oom, { hog: 'OOMKilled', limited: 'CONTAINER_RUNNING', noswap: 'CONTAINER_RUNNING' });
  // A shared pid namespace: the infra process has its own cgroup, so the container's limits apply.
  assert.deepEqual(r.shared, { state: 'CONTAINER_RUNNING', memoryMax: String(32 * MiB), podProcs: '' });
  assert.deepEqual(r.gc, { newState: 'CONTAINER_RUNNING', oldCgroupGone: true, newCgroup: true, podCgroup: true });
  assert.deepEqual(r.podCgroupsAfterRemoval, [true, true, true]);
});
