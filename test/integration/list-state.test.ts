// ListContainers and ListPodSandbox answer from objects kept per record:
// each change of state (create, start, exit, stop, removal, an infra
// process killed from outside) shows in the next list.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestDaemon } from '../helpers/daemon.ts';
import { startPodFixture, type PodFixture } from '../helpers/pod-fixture.ts';

let f: PodFixture;
let d: TestDaemon;
let image: string;
let tag: string;

before(async () => {
  f = await startPodFixture({ name: 'list' });
  ({ d, image, tag } = f);
});

after(() => f?.cleanup());

async function pod(name: string, pid = 'CONTAINER'): Promise<{ id: string; config: any }> {
  const config = {
    metadata: { name, namespace: 'list', uid: `uid-${name}-${tag}`, attempt: 0 },
    linux: { security_context: { namespace_options: { network: 'POD', pid, ipc: 'POD' } } },
  };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  f.pods.push(pod_sandbox_id);
  return { id: pod_sandbox_id, config };
}

const containerStates = async (pod: string) =>
  Object.fromEntries((await d.call('ListContainers', { filter: { pod_sandbox_id: pod } })).containers.map((c: any) => [c.metadata.name, c.state]));
const podState = async (id: string) => (await d.call('ListPodSandbox', {})).items.find((p: any) => p.id === id)?.state;

test('each change of a container and a pod shows in the next ListContainers and ListPodSandbox', async () => {
  const p = await pod('states');
  assert.equal(await podState(p.id), 'SANDBOX_READY');
  const create = async (name: string, command: string[]) =>
    (await d.call('CreateContainer', { pod_sandbox_id: p.id, config: { metadata: { name }, image: { image }, command }, sandbox_config: p.config }))
      .container_id as string;
  const sleeper = await create('sleeper', ['sleep', '3600']);
  const quick = await create('quick', ['sh', '-c', 'exit 3']);
  assert.deepEqual(await containerStates(p.id), { sleeper: 'CONTAINER_CREATED', quick: 'CONTAINER_CREATED' });
  await d.call('StartContainer', { container_id: sleeper });
  assert.deepEqual(await containerStates(p.id), { sleeper: 'CONTAINER_RUNNING', quick: 'CONTAINER_CREATED' });
  await d.call('StartContainer', { container_id: quick });
  // An exit on its own: the list says so once ContainerStatus does.
  for (let i = 0; i < 200 && (await d.call('ContainerStatus', { container_id: quick })).status.state !== 'CONTAINER_EXITED'; i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await containerStates(p.id), { sleeper: 'CONTAINER_RUNNING', quick: 'CONTAINER_EXITED' });
  // Filters by state read the current state too.
  const running = await d.call('ListContainers', { filter: { state: { state: 'CONTAINER_RUNNING' }, pod_sandbox_id: p.id } });
  assert.deepEqual(
    running.containers.map((c: any) => c.id),
    [sleeper],
  );
  await d.call('StopContainer', { container_id: sleeper, timeout: 0 });
  assert.deepEqual(await containerStates(p.id), { sleeper: 'CONTAINER_EXITED', quick: 'CONTAINER_EXITED' });
  await d.call('RemoveContainer', { container_id: quick });
  assert.deepEqual(await containerStates(p.id), { sleeper: 'CONTAINER_EXITED' });
  await d.call('StopPodSandbox', { pod_sandbox_id: p.id });
  assert.equal(await podState(p.id), 'SANDBOX_NOTREADY');
  const notReady = await d.call('ListPodSandbox', { filter: { state: { state: 'SANDBOX_READY' } } });
  assert.ok(!notReady.items.some((i: any) => i.id === p.id));
  await d.call('RemovePodSandbox', { pod_sandbox_id: p.id });
  assert.equal(await podState(p.id), undefined);
  assert.deepEqual(await containerStates(p.id), {});
});

test('a pod whose infra process is killed from outside lists as not ready', async () => {
  const p = await pod('infra', 'POD');
  assert.equal(await podState(p.id), 'SANDBOX_READY');
  const { info } = await d.call('PodSandboxStatus', { pod_sandbox_id: p.id, verbose: true });
  const pid = JSON.parse(info.info).pid as number;
  assert.ok(pid > 0, 'the pod has an infra process');
  process.kill(pid, 'SIGKILL');
  // PodSandboxStatus looks every time; the list within a few seconds.
  let status = '';
  for (let i = 0; i < 100 && status !== 'SANDBOX_NOTREADY'; i++) {
    status = (await d.call('PodSandboxStatus', { pod_sandbox_id: p.id })).status.state;
    if (status !== 'SANDBOX_NOTREADY') await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(status, 'SANDBOX_NOTREADY');
  let listed = '';
  for (let i = 0; i < 100 && listed !== 'SANDBOX_NOTREADY'; i++) {
    listed = await podState(p.id);
    if (listed !== 'SANDBOX_NOTREADY') await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(listed, 'SANDBOX_NOTREADY');
});
