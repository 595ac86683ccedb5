// Container RPCs through the socket: answers for unknown containers and pods
// (NOT_FOUND, idempotent stop/remove), empty lists and streams, and a pod
// whose removal finds no containers to clean. The full lifecycle with real
// runc and conmon is covered at the service level in test/unit/container.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';

function containerConfig(name: string): any {
  return { metadata: { name, attempt: 0 }, image: { image: 'busybox:latest' }, command: ['/bin/true'], log_path: `${name}.log` };
}

test('container RPCs on unknown ids and pods answer clearly', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());

  assert.deepEqual((await d.call('ListContainers', {})).containers, []);
  assert.deepEqual(await d.call('StreamContainers', {}), []);
  await d.call('StopContainer', { container_id: 'nosuch', timeout: 1 });
  await d.call('RemoveContainer', { container_id: 'nosuch' });
  for (const [rpc, request] of [
    ['ContainerStatus', { container_id: 'nosuch' }],
    ['StartContainer', { container_id: 'nosuch' }],
    ['ExecSync', { container_id: 'nosuch', cmd: ['true'], timeout: 1 }],
    ['UpdateContainerResources', { container_id: 'nosuch', linux: { memory_limit_in_bytes: 1 << 26 } }],
    ['ReopenContainerLog', { container_id: 'nosuch' }],
  ] as const) {
    await assert.rejects(d.call(rpc, request), (e: any) => e.code === status.NOT_FOUND && /nosuch/.test(e.details), rpc);
  }
  const pod = randomBytes(32).toString('hex');
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: pod, config: containerConfig('c'), sandbox_config: {} }),
    (e: any) => e.code === status.NOT_FOUND && e.details.includes(pod),
  );
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: pod, config: { image: { image: 'x' } }, sandbox_config: {} }),
    (e: any) => e.code === status.INVALID_ARGUMENT && /metadata\.name/.test(e.details),
  );
});
