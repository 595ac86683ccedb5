// Stats and metrics RPCs through the socket, read from real cgroups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

function hostPod(name: string): any {
  return {
    metadata: { name, namespace: 'tscri-stats', uid: `uid-${randomBytes(4).toString('hex')}`, attempt: 0 },
    labels: { app: name },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
  };
}

test('pod stats come from the pod cgroup and its processes', async (t) => {
  const tag = randomBytes(3).toString('hex');
  const d = await startDaemon({ config: `default_cgroup_parent = "/tscri-stats-${tag}"\n[cni]\nconf_dir = "/nonexistent"\n` });
  let id = '';
  t.after(async () => {
    if (id) await d.call('RemovePodSandbox', { pod_sandbox_id: id });
    await d.cleanup();
    await removeCgroup(`/tscri-stats-${tag}`);
  });
  id = (await d.call('RunPodSandbox', { config: hostPod('stats') })).pod_sandbox_id;

  const { stats } = await d.call('PodSandboxStats', { pod_sandbox_id: id });
  assert.equal(stats.attributes.id, id);
  assert.equal(stats.attributes.labels.app, 'stats');
  assert.ok(stats.linux.process.process_count.value >= 1, 'the infra process is counted');
  assert.ok(stats.linux.memory.usage_bytes.value > 0);
  assert.ok(stats.linux.cpu.usage_core_nano_seconds.value >= 0);

  const listed = await d.call('ListPodSandboxStats', { filter: { label_selector: { app: 'stats' } } });
  assert.deepEqual(
    listed.stats.map((s: any) => s.attributes.id),
    [id],
  );
  const none = await d.call('ListPodSandboxStats', { filter: { label_selector: { app: 'other' } } });
  assert.deepEqual(none.stats, []);
  const streamed = await d.call('StreamPodSandboxStats', { filter: { id } });
  assert.equal(streamed[0].pod_sandbox_stats[0].attributes.id, id);

  // A second reading has an interval, so nano-cores is reported.
  const again = await d.call('PodSandboxStats', { pod_sandbox_id: id });
  assert.equal(typeof again.stats.linux.cpu.usage_nano_cores.value, 'number');

  assert.deepEqual((await d.call('ListContainerStats', {})).stats, []);
  const { descriptors } = await d.call('ListMetricDescriptors', {});
  assert.ok(descriptors.some((m: any) => m.name === 'container_memory_working_set_bytes'));
  const metrics = await d.call('ListPodSandboxMetrics', {});
  assert.ok(metrics.pod_metrics.some((m: any) => m.pod_sandbox_id === id));
});

test('stats of unknown objects are NOT_FOUND, missing ids INVALID_ARGUMENT', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  await assert.rejects(d.call('ContainerStats', { container_id: 'nope' }), (e: any) => e.code === status.NOT_FOUND);
  await assert.rejects(d.call('PodSandboxStats', { pod_sandbox_id: 'nope' }), (e: any) => e.code === status.NOT_FOUND);
  await assert.rejects(d.call('ContainerStats', {}), (e: any) => e.code === status.INVALID_ARGUMENT);
});
