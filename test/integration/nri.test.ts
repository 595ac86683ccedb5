// NRI with a real daemon: our test plugin connects to the daemon's NRI socket
// (and another one is pre-installed, started by the daemon), sees the pod and
// container lifecycle, adjusts a container (an env var, a
// mount, a memory limit) whose effect is checked inside the running
// container, changes a resource update, asks for updates and evictions on its
// own; a plugin that fails or hangs fails only the call concerned and leaves
// nothing behind; garbage on the NRI socket harms nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { TestPlugin, refuse, type TestPluginOptions } from '../helpers/nri-plugin.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

const MiB = 1024 * 1024;
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-nri-${tag}`;
let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let image: string;
let work: string;
let nriSocket: string;
const plugins: TestPlugin[] = [];
const pods: string[] = [];

before(async () => {
  registry = await startRegistry();
  network = await makeTestNetwork();
  work = await mkdtemp(join(tmpdir(), 'tscri-nri-'));
  nriSocket = join(work, 'nri', 'nri.sock');
  // A pre-installed plugin: the test plugin as a program, configured to set an env var.
  await mkdir(join(work, 'plugins'));
  await mkdir(join(work, 'conf.d'));
  const main = fileURLToPath(new URL('../helpers/nri-plugin-main.ts', import.meta.url));
  await writeFile(join(work, 'plugins', '05-preinstalled'), `#!/bin/sh\nexec ${process.execPath} ${main}\n`);
  await chmod(join(work, 'plugins', '05-preinstalled'), 0o755);
  await writeFile(join(work, 'conf.d', 'preinstalled.conf'), JSON.stringify({ adjust: { env: [{ key: 'PREINSTALLED', value: 'yes' }] } }));
  d = await startDaemon({
    config: [
      `default_cgroup_parent = "${parent}"`,
      '[nri]',
      'enable = true',
      `socket_path = "${nriSocket}"`,
      `plugin_path = "${join(work, 'plugins')}"`,
      `plugin_config_path = "${join(work, 'conf.d')}"`,
      'registration_timeout = 20',
      network.toml,
    ].join('\n'),
  });
  await pushBusybox(registry.url, 'nri/busybox', 'v1', { config: { Env: ['PATH=/bin'], Cmd: ['sh'] } });
  image = `${registry.host}/nri/busybox:v1`;
  await d.call('PullImage', { image: { image } });
});

after(async () => {
  for (const p of plugins) p.close();
  for (const id of pods) await d?.call('RemovePodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
  await d?.cleanup();
  await network?.cleanup();
  await registry?.stop();
  await removeCgroup(parent).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

/** Connects a plugin and waits until the daemon has synchronized and registered it. */
async function plug(options: TestPluginOptions): Promise<TestPlugin> {
  const plugin = new TestPlugin(options);
  plugins.push(plugin);
  const label = `"plugin":"${options.index}-${options.name}"`;
  const registered = () =>
    d
      .output()
      .split('\n')
      .some((l) => l.includes(label) && l.includes('NRI plugin registered'));
  await plugin.connect(nriSocket);
  for (let i = 0; i < 500 && !registered(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(registered(), `plugin ${options.name} registered`);
  return plugin;
}

async function unplug(plugin: TestPlugin): Promise<void> {
  const label = `"plugin":"${plugin.options.index}-${plugin.options.name}"`;
  plugin.close();
  await plugin.closed;
  for (
    let i = 0;
    i < 500 &&
    !d
      .output()
      .split('\n')
      .some((l) => l.includes(label) && l.includes('NRI plugin disconnected'));
    i++
  )
    await new Promise((r) => setTimeout(r, 10));
}

function podConfig(name: string): any {
  return {
    metadata: { name, namespace: 'nri-test', uid: `uid-${name}-${tag}`, attempt: 0 },
    hostname: name,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function runPod(name: string): Promise<{ id: string; config: any }> {
  const config = podConfig(name);
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  pods.push(pod_sandbox_id);
  return { id: pod_sandbox_id, config };
}

function containerConfig(name: string, command = ['sleep', '300']): any {
  return { metadata: { name }, image: { image }, command };
}

async function createContainer(pod: { id: string; config: any }, name: string, command?: string[]): Promise<string> {
  const { container_id } = await d.call('CreateContainer', { pod_sandbox_id: pod.id, config: containerConfig(name, command), sandbox_config: pod.config });
  return container_id;
}

async function exec(id: string, script: string): Promise<string> {
  const out = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', script], timeout: 10 });
  assert.equal(out.exit_code, 0, Buffer.from(out.stderr).toString());
  return Buffer.from(out.stdout).toString();
}

const MEMORY_LIMIT = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max';

async function waitState(id: string, state: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const { status: s } = await d.call('ContainerStatus', { container_id: id });
    if (s.state === state) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`container ${id} did not become ${state}`);
}

/** Bundles, rootfs mounts and records the daemon keeps for containers. */
async function containerTraces(): Promise<string[]> {
  const bundles = await readdir(join(d.state, 'containers')).catch(() => []);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(join(d.state, 'containers')));
  const records = await readdir(join(d.root, 'containers')).catch(() => []);
  return [
    ...bundles.filter((b) => /^[0-9a-f]{64}$/.test(b)).map((b) => `bundle ${b}`),
    ...mounts.map((m) => `mount ${m}`),
    ...records.map((r) => `record ${r}`),
  ];
}

test('the NRI socket is root-only; a plugin sees the lifecycle in order, with pod and container metadata', async () => {
  assert.equal(statSync(nriSocket).mode & 0o777, 0o600);
  const plugin = await plug({ name: 'watch', index: '10' });
  const pod = await runPod('watched');
  const id = await createContainer(pod, 'app');
  await d.call('StartContainer', { container_id: id });
  await d.call('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 200 * MiB } });
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
  await d.call('StopPodSandbox', { pod_sandbox_id: pod.id });
  await d.call('StopPodSandbox', { pod_sandbox_id: pod.id });
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  await plugin.waitFor('RemovePodSandbox');

  const mine = plugin.received.filter((r) => r.pod?.id === pod.id);
  assert.deepEqual(
    mine.map((r) => r.method),
    [
      'RunPodSandbox',
      'CreateContainer',
      'ValidateContainerAdjustment',
      'PostCreateContainer',
      'StartContainer',
      'PostStartContainer',
      'UpdateContainer',
      'PostUpdateContainer',
      'StopContainer',
      'RemoveContainer',
      'StopPodSandbox',
      'RemovePodSandbox',
    ],
  );
  const run = mine[0]!.pod!;
  assert.equal(run.name, 'watched');
  assert.equal(run.namespace, 'nri-test');
  assert.equal(run.uid, `uid-watched-${tag}`);
  const created = mine[1]!.container!;
  assert.equal(created.id, id);
  assert.equal(created.name, 'app');
  assert.equal(created.pod_sandbox_id, pod.id);
  assert.deepEqual(created.args, ['sleep', '300']);
  assert.equal(mine[6]!.request.linux_resources.memory.limit.value, 200 * MiB);
  assert.equal(mine[8]!.container!.state, 'CONTAINER_STOPPED');
  await unplug(plugin);
});

test('a plugin adjusts a container: env var, mount and memory limit are in effect in the running container', async () => {
  const data = join(work, 'data');
  await rm(data, { recursive: true, force: true });
  await mkdir(data);
  await writeFile(join(data, 'hello'), 'from the host\n');
  const plugin = await plug({
    name: 'adjust',
    index: '20',
    adjust: {
      env: [{ key: 'NRI_INJECTED', value: 'yes' }],
      mounts: [{ destination: '/nri-data', type: 'bind', source: data, options: ['rbind', 'ro'] }],
      annotations: { 'nri.example/adjusted': 'true' },
      linux: { resources: { memory: { limit: { value: 64 * MiB } } } },
    },
  });
  const pod = await runPod('adjusted');
  const id = await createContainer(pod, 'app');
  await d.call('StartContainer', { container_id: id });
  assert.equal(
    await exec(id, 'echo "$NRI_INJECTED $PREINSTALLED"; cat /nri-data/hello; touch /nri-data/x 2>/dev/null && echo rw || echo ro'),
    'yes yes\nfrom the host\nro\n',
  );
  assert.equal(Number((await exec(id, MEMORY_LIMIT)).trim()), 64 * MiB);
  const { info } = await d.call('ContainerStatus', { container_id: id, verbose: true });
  assert.match(info.info, /nri\.example\/adjusted/);

  // UpdateContainerResources: the plugin lowers the memory limit the kubelet asked for.
  const lower: TestPlugin = await plug({
    name: 'lower',
    index: '30',
    handlers: {
      UpdateContainer: (request) => ({ update: [{ container_id: request.container.id, linux: { resources: { memory: { limit: { value: 80 * MiB } } } } }] }),
    },
  });
  await d.call('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 128 * MiB } });
  assert.equal(Number((await exec(id, MEMORY_LIMIT)).trim()), 80 * MiB);
  await unplug(lower);

  // Updates and evictions the plugin asks for on its own.
  assert.deepEqual(await plugin.updateContainers([{ container_id: id, linux: { resources: { memory: { limit: { value: 96 * MiB } } } } }]), []);
  assert.equal(Number((await exec(id, MEMORY_LIMIT)).trim()), 96 * MiB);
  const failed = await plugin.updateContainers([{ container_id: 'f'.repeat(64), linux: { resources: { memory: { limit: { value: 96 * MiB } } } } }]);
  assert.deepEqual(
    failed.map((u) => u.container_id),
    ['f'.repeat(64)],
  );
  await plugin.updateContainers([], [{ container_id: id, reason: 'test eviction' }]);
  await waitState(id, 'CONTAINER_EXITED');
  await plugin.waitFor('StopContainer', id);

  await d.call('RemoveContainer', { container_id: id });
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  await unplug(plugin);
});

test('a new plugin is synchronized with the existing pods and containers', async () => {
  const pod = await runPod('existing');
  const id = await createContainer(pod, 'app');
  await d.call('StartContainer', { container_id: id });
  const plugin = await plug({ name: 'late', index: '40' });
  assert.ok(plugin.synced!.pods.some((p) => p.id === pod.id && p.name === 'existing'));
  const seen = plugin.synced!.containers.find((c) => c.id === id)!;
  assert.equal(seen.state, 'CONTAINER_RUNNING');
  assert.deepEqual(seen.args, ['sleep', '300']);
  assert.ok(seen.pid! > 0);
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  await unplug(plugin);
});

test('a plugin that refuses RunPodSandbox fails it, leaves no pod behind, and the retry succeeds', async () => {
  let fail = true;
  const plugin = await plug({
    name: 'refuse-pod',
    index: '10',
    handlers: {
      RunPodSandbox: () => {
        if (!fail) return {};
        fail = false;
        refuse('no pods today');
      },
    },
  });
  const config = podConfig('refused');
  await assert.rejects(
    d.call('RunPodSandbox', { config }),
    (e: any) => e.code === status.FAILED_PRECONDITION && /10-refuse-pod/.test(e.details) && /no pods today/.test(e.details),
  );
  const attempted = plugin.received.find((r) => r.method === 'RunPodSandbox')!.pod!.id!;
  assert.deepEqual(
    (await d.call('ListPodSandbox', {})).items.filter((p: any) => p.metadata.name === 'refused'),
    [],
  );
  assert.equal(existsSync(join(d.state, 'pods', attempted)), false);
  assert.deepEqual(await network.leftovers([attempted]), []);
  // The plugins that saw the pod are told it is gone.
  await plugin.waitFor('RemovePodSandbox');

  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  pods.push(pod_sandbox_id);
  assert.equal((await d.call('PodSandboxStatus', { pod_sandbox_id })).status.state, 'SANDBOX_READY');
  await d.call('RemovePodSandbox', { pod_sandbox_id });
  await unplug(plugin);
});

test('a plugin that refuses CreateContainer fails it and leaks nothing; one that hangs on StartContainer times out and is dropped', async () => {
  const pod = await runPod('refusing');
  const before = await containerTraces();
  let fail = true;
  const refuser = await plug({
    name: 'refuse-ctr',
    index: '10',
    handlers: {
      CreateContainer: () => {
        if (!fail) return {};
        fail = false;
        refuse('not this one');
      },
    },
  });
  await assert.rejects(
    createContainer(pod, 'app'),
    (e: any) => e.code === status.FAILED_PRECONDITION && /10-refuse-ctr failed CreateContainer: not this one/.test(e.details),
  );
  assert.deepEqual(
    (await d.call('ListContainers', {})).containers.filter((c: any) => c.pod_sandbox_id === pod.id),
    [],
  );
  assert.deepEqual(await containerTraces(), before);
  const attempted = refuser.received.find((r) => r.method === 'CreateContainer')!.container!.id!;
  await refuser.waitFor('RemoveContainer', attempted);
  assert.equal(
    refuser.received.some((r) => r.method === 'StartContainer'),
    false,
  );

  const hanging = await plug({ name: 'hang', index: '20', handlers: { StartContainer: () => new Promise(() => undefined) } });
  const id = await createContainer(pod, 'app');
  await assert.rejects(
    d.call('StartContainer', { container_id: id }),
    (e: any) => e.code === status.DEADLINE_EXCEEDED && /20-hang did not answer StartContainer/.test(e.details),
  );
  await hanging.closed;
  assert.equal((await d.call('ContainerStatus', { container_id: id })).status.state, 'CONTAINER_CREATED');
  // Without the hanging plugin the container starts, and the other plugin carries on.
  await d.call('StartContainer', { container_id: id });
  await refuser.waitFor('PostStartContainer', id);
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  await unplug(refuser);
});

test('garbage, oversized frames and silent connections on the NRI socket harm nothing', async () => {
  const send = (bytes: Buffer) =>
    new Promise<void>((resolve) => {
      const s = connect(nriSocket, () => s.write(bytes));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      setTimeout(() => s.destroy(), 3000);
    });
  // A multiplexer frame announcing 1 GiB, then random bytes, then a connection that never registers.
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(1, 0);
  huge.writeUInt32BE(1 << 30, 4);
  await send(Buffer.concat([huge, randomBytes(1024)]));
  await send(randomBytes(4096));
  await send(Buffer.from('\0\0\0\0'));
  // The daemon serves on: CRI calls answer, and a well-behaved plugin still registers and gets events.
  assert.ok((await d.call('Version', {})).runtime_name);
  const plugin = await plug({ name: 'after-garbage', index: '50' });
  const pod = await runPod('after-garbage');
  await plugin.waitFor('RunPodSandbox');
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  await unplug(plugin);
});
