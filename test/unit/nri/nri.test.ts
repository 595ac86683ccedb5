// The NRI runtime side with real plugins over its socket (the test plugin of
// test/helpers speaks the protocol) and a pre-installed plugin it starts
// itself; the runtime's state is a small in-memory stand-in.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, test } from 'node:test';
import { pino } from 'pino';
import type { NriSettings } from '../../../src/config/config.ts';
import type { NriError } from '../../../src/nri/errors.ts';
import { Event, eventBit } from '../../../src/nri/events.ts';
import { Nri, type NriRuntime } from '../../../src/nri/nri.ts';
import type { Container, ContainerEviction, ContainerUpdate, PodSandbox } from '../../../src/nri/types.ts';
import { TestPlugin, refuse } from '../../helpers/nri-plugin.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscri-nri-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const running: Nri[] = [];
const plugins: TestPlugin[] = [];
afterEach(async () => {
  for (const p of plugins.splice(0)) p.close();
  for (const n of running.splice(0)) await n.stop();
});

class FakeRuntime implements NriRuntime {
  pods: PodSandbox[] = [{ id: 'p1', name: 'web', namespace: 'default', uid: 'u1' }];
  containers: Container[] = [{ id: 'c1', pod_sandbox_id: 'p1', name: 'app', state: 'CONTAINER_RUNNING' }];
  updated: ContainerUpdate[] = [];
  evicted: ContainerEviction[] = [];
  async snapshot() {
    return { pods: this.pods, containers: this.containers };
  }
  async updateContainers(updates: ContainerUpdate[]) {
    this.updated.push(...updates);
    return updates.filter((u) => u.container_id === 'missing');
  }
  async evictContainers(evictions: ContainerEviction[]) {
    this.evicted.push(...evictions);
  }
}

async function startNri(settings: Partial<NriSettings> = {}, runtime = new FakeRuntime()) {
  const base = join(dir, `n${counter++}`);
  const nri = new Nri(
    {
      enable: true,
      socket_path: join(base, 'nri.sock'),
      plugin_path: join(base, 'plugins'),
      plugin_config_path: join(base, 'conf.d'),
      registration_timeout: 2,
      request_timeout: 0.5,
      disable_connections: false,
      ...settings,
    },
    { name: 'tscri', version: '0.1.0' },
    pino({ level: 'silent' }),
  );
  await nri.start(runtime);
  running.push(nri);
  return { nri, runtime, socket: join(base, 'nri.sock'), base };
}

/** Connects a test plugin and waits until the runtime has synchronized it. */
async function plug(nri: Nri, socket: string, options: ConstructorParameters<typeof TestPlugin>[0]) {
  const plugin = new TestPlugin(options);
  plugins.push(plugin);
  await plugin.connect(socket);
  for (let i = 0; i < 200 && !nri.pluginNames().includes(`${options.index}-${options.name}`); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(nri.pluginNames().includes(`${options.index}-${options.name}`), 'plugin registered');
  return plugin;
}

const pod: PodSandbox = { id: 'p2', name: 'db', namespace: 'default', uid: 'u2' };
const ctr = (id: string): Container => ({ id, pod_sandbox_id: 'p2', name: id, env: ['PATH=/bin'], mounts: [] });

test('the socket is root-only and a plugin is configured and synchronized with the existing state', async () => {
  const { nri, socket } = await startNri();
  assert.equal(statSync(socket).mode & 0o777, 0o600);
  const plugin = await plug(nri, socket, { name: 'sync', index: '10' });
  assert.deepEqual(plugin.methods().slice(0, 2), ['Configure', 'Synchronize']);
  assert.equal(plugin.received[0]!.request.runtime_name, 'tscri');
  assert.equal(plugin.received[0]!.request.request_timeout, 500);
  assert.deepEqual(
    plugin.synced!.pods.map((p) => p.id),
    ['p1'],
  );
  assert.deepEqual(
    plugin.synced!.containers.map((c) => c.id),
    ['c1'],
  );
});

test('lifecycle events reach subscribed plugins in index order', async () => {
  const { nri, socket } = await startNri();
  const order: string[] = [];
  const record = (name: string) => () => {
    order.push(name);
    return {};
  };
  await plug(nri, socket, { name: 'late', index: '90', handlers: { RunPodSandbox: record('90') } });
  await plug(nri, socket, { name: 'early', index: '05', handlers: { RunPodSandbox: record('05') } });
  const podsOnly = await plug(nri, socket, { name: 'pods', index: '50', events: eventBit(Event.RunPodSandbox) | eventBit(Event.StopPodSandbox) });
  assert.deepEqual(nri.pluginNames(), ['05-early', '50-pods', '90-late']);
  await nri.runPodSandbox(pod);
  assert.deepEqual(order, ['05', '90']);
  await nri.createContainer(pod, ctr('c2'));
  await nri.startContainer(pod, ctr('c2'));
  await nri.stopContainer(pod, ctr('c2'));
  await nri.stopContainer(pod, ctr('c2'));
  await nri.removeContainer(pod, ctr('c2'));
  await nri.stopPodSandbox(pod);
  await nri.stopPodSandbox(pod);
  await nri.removePodSandbox(pod);
  assert.deepEqual(podsOnly.methods().slice(2), ['RunPodSandbox', 'StopPodSandbox']);
});

test('every event is relayed once, with stop before removal', async () => {
  const { nri, socket } = await startNri();
  const plugin = await plug(nri, socket, { name: 'all', index: '10' });
  await nri.runPodSandbox(pod);
  await nri.createContainer(pod, ctr('c2'));
  await nri.postCreateContainer(pod, ctr('c2'));
  await nri.startContainer(pod, ctr('c2'));
  await nri.postStartContainer(pod, ctr('c2'));
  await nri.updateContainer(pod, ctr('c2'), {});
  await nri.postUpdateContainer(pod, ctr('c2'));
  await nri.removeContainer(pod, ctr('c2'));
  await nri.removePodSandbox(pod);
  assert.deepEqual(plugin.methods().slice(2), [
    'RunPodSandbox',
    'CreateContainer',
    // A plugin subscribed to everything also validates adjustments.
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
  ]);
  const create = plugin.received.find((r) => r.method === 'CreateContainer')!;
  assert.equal(create.pod!.name, 'db');
  assert.equal(create.container!.name, 'c2');
});

test('adjustments of several plugins are merged; conflicting ones fail the creation naming both', async () => {
  const { nri, socket } = await startNri();
  await plug(nri, socket, { name: 'env', index: '10', adjust: { env: [{ key: 'INJECTED', value: 'yes' }] } });
  await plug(nri, socket, {
    name: 'res',
    index: '20',
    adjust: { mounts: [{ destination: '/nri', source: '/tmp', type: 'bind', options: ['rbind', 'ro'] }], linux: { resources: { pids: { limit: 42 } } } },
  });
  const result = await nri.createContainer(pod, ctr('c2'));
  assert.deepEqual(result.adjust.env, [{ key: 'INJECTED', value: 'yes' }]);
  assert.equal(result.adjust.mounts![0]!.destination, '/nri');
  assert.equal(result.adjust.linux!.resources!.pids!.limit, 42);

  await plug(nri, socket, { name: 'clash', index: '30', adjust: { env: [{ key: 'INJECTED', value: 'no' }] } });
  await assert.rejects(
    nri.createContainer(pod, ctr('c3')),
    (err: NriError) => err.kind === 'invalid-adjustment' && /"30-clash" and "10-env"/.test(err.message),
  );
});

test('a plugin that fails an event fails only that call; one that hangs times out and is dropped', async () => {
  const { nri, socket } = await startNri();
  let failNext = true;
  await plug(nri, socket, {
    name: 'flaky',
    index: '10',
    handlers: {
      RunPodSandbox: () => {
        if (failNext) {
          failNext = false;
          refuse('induced failure');
        }
        return {};
      },
    },
  });
  await assert.rejects(
    nri.runPodSandbox(pod),
    (err: NriError) => err.kind === 'plugin-failed' && /10-flaky failed RunPodSandbox: induced failure/.test(err.message),
  );
  await nri.runPodSandbox(pod);

  const hanging = await plug(nri, socket, { name: 'hang', index: '20', handlers: { CreateContainer: () => new Promise(() => undefined) } });
  await assert.rejects(
    nri.createContainer(pod, ctr('c2')),
    (err: NriError) => err.kind === 'timeout' && /20-hang did not answer CreateContainer within 500 ms/.test(err.message),
  );
  await hanging.closed;
  assert.deepEqual(nri.pluginNames(), ['10-flaky']);
  await nri.createContainer(pod, ctr('c3'));
});

test('a plugin that disconnects is dropped and events go on without it', async () => {
  const { nri, socket } = await startNri();
  const plugin = await plug(nri, socket, { name: 'gone', index: '10' });
  await plug(nri, socket, { name: 'stays', index: '20' });
  plugin.close();
  for (let i = 0; i < 100 && nri.pluginNames().length > 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(nri.pluginNames(), ['20-stays']);
  await nri.runPodSandbox(pod);
});

test('a plugin that disconnects in the middle of an event does not fail it', async () => {
  const { nri, socket } = await startNri({ request_timeout: 5 });
  let plugin!: TestPlugin;
  plugin = await plug(nri, socket, { name: 'leaves', index: '10', handlers: { RunPodSandbox: () => (plugin.close(), new Promise(() => undefined)) } });
  await nri.runPodSandbox(pod);
});

test('registration with a bad name or no registration at all is refused', async () => {
  const { nri, socket } = await startNri({ registration_timeout: 0.3 });
  await assert.rejects(new TestPlugin({ name: 'bad/name', index: '10' }).connect(socket), /invalid plugin name/);
  await assert.rejects(new TestPlugin({ name: 'ok', index: '1' }).connect(socket), /invalid plugin index/);
  const silent = connect(socket);
  const closed = new Promise((resolve) => silent.once('close', resolve));
  silent.on('error', () => undefined);
  await closed;
  assert.deepEqual(nri.pluginNames(), []);
});

test("container creation and a new plugin's synchronization do not overlap", async () => {
  const runtime = new FakeRuntime();
  const { nri, socket } = await startNri({}, runtime);
  const release = await nri.blockSync();
  const plugin = new TestPlugin({ name: 'new', index: '10' });
  plugins.push(plugin);
  await plugin.connect(socket);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(plugin.synced, undefined, 'synchronization waits for the creation in progress');
  runtime.containers = [...runtime.containers, { id: 'c9', pod_sandbox_id: 'p1', name: 'late' }];
  release();
  await plugin.waitFor('Synchronize');
  assert.deepEqual(
    plugin.synced!.containers.map((c) => c.id),
    ['c1', 'c9'],
  );
});

test('plugin-requested updates and evictions reach the runtime; failed ones are reported back', async () => {
  const runtime = new FakeRuntime();
  const { nri, socket } = await startNri({}, runtime);
  const plugin = await plug(nri, socket, { name: 'upd', index: '10' });
  const failed = await plugin.updateContainers(
    [
      { container_id: 'c1', linux: { resources: { memory: { limit: { value: 1 << 30 } } } } },
      { container_id: 'missing', linux: { resources: { pids: { limit: 5 } } } },
    ],
    [{ container_id: 'c1', reason: 'too greedy' }],
  );
  assert.deepEqual(
    failed.map((u) => u.container_id),
    ['missing'],
  );
  assert.equal(runtime.updated[0]!.linux!.resources!.memory!.limit!.value, 1 << 30);
  assert.match(runtime.evicted[0]!.reason!, /10-upd: too greedy/);
});

test('pre-installed plugins are started from plugin_path with their configuration', async () => {
  const base = join(dir, `n${counter++}`);
  mkdirSync(join(base, 'plugins'), { recursive: true });
  mkdirSync(join(base, 'conf.d'), { recursive: true });
  const main = fileURLToPath(new URL('../../helpers/nri-plugin-main.ts', import.meta.url));
  const script = join(base, 'plugins', '30-injector');
  writeFileSync(script, `#!/bin/sh\nexec ${process.execPath} ${main}\n`);
  chmodSync(script, 0o755);
  writeFileSync(join(base, 'plugins', 'not-a-plugin'), 'x');
  writeFileSync(join(base, 'conf.d', 'injector.conf'), JSON.stringify({ adjust: { env: [{ key: 'FROM_CONFIG', value: '1' }] } }));
  const { nri } = await startNri({
    plugin_path: join(base, 'plugins'),
    plugin_config_path: join(base, 'conf.d'),
    disable_connections: true,
    request_timeout: 5,
    registration_timeout: 10,
  });
  assert.deepEqual(nri.pluginNames(), ['30-injector']);
  const result = await nri.createContainer(pod, ctr('c2'));
  assert.deepEqual(result.adjust.env, [{ key: 'FROM_CONFIG', value: '1' }]);
});
