// The metrics registry: names, labels and types as the README lists them, in a
// text format a Prometheus parser reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../../src/metrics.ts';
import { parseExposition, sample } from '../../helpers/prometheus.ts';

test('calls are counted by RPC and code, with latency buckets', async () => {
  const metrics = new Metrics();
  metrics.observe('Version', 'OK', 0.002);
  metrics.observe('Version', 'OK', 0.2);
  metrics.observe('PullImage', 'NOT_FOUND', 3);
  const families = parseExposition(await metrics.render());
  assert.equal(sample(families, 'tscri_grpc_requests_total', { rpc: 'Version', code: 'OK' }), 2);
  assert.equal(sample(families, 'tscri_grpc_requests_total', { rpc: 'PullImage', code: 'NOT_FOUND' }), 1);
  assert.equal(sample(families, 'tscri_grpc_request_duration_seconds_bucket', { rpc: 'Version', le: '0.005' }), 1);
  assert.equal(sample(families, 'tscri_grpc_request_duration_seconds_bucket', { rpc: 'Version', le: '0.25' }), 2);
  assert.equal(sample(families, 'tscri_grpc_request_duration_seconds_count', { rpc: 'PullImage' }), 1);
  assert.ok(sample(families, 'tscri_process_resident_memory_bytes', {})! > 0);
});

test('pods and containers are counted by state from the source; sessions while open; timings by result', async () => {
  const metrics = new Metrics();
  metrics.setStateSource({ pods: async () => ({ ready: 2, notready: 1 }), containers: () => ({ running: 3 }) });
  const end = metrics.openSession('exec', 'spdy');
  await metrics.time(metrics.runtimeDuration, { command: 'start' }, async () => 1);
  await assert.rejects(
    metrics.time(metrics.cniDuration, { command: 'ADD', plugin: 'bridge' }, async () => {
      throw new Error('x');
    }),
  );
  let families = parseExposition(await metrics.render());
  assert.equal(sample(families, 'tscri_pods', { state: 'ready' }), 2);
  assert.equal(sample(families, 'tscri_pods', { state: 'notready' }), 1);
  assert.equal(sample(families, 'tscri_containers', { state: 'running' }), 3);
  assert.equal(sample(families, 'tscri_containers', { state: 'exited' }), 0, 'every state has a series');
  assert.equal(sample(families, 'tscri_stream_sessions_active', { kind: 'exec' }), 1);
  assert.equal(sample(families, 'tscri_stream_sessions_total', { kind: 'exec', protocol: 'spdy' }), 1);
  assert.equal(sample(families, 'tscri_oci_runtime_duration_seconds_count', { command: 'start', result: 'ok' }), 1);
  assert.equal(sample(families, 'tscri_cni_plugin_duration_seconds_count', { command: 'ADD', plugin: 'bridge', result: 'error' }), 1);
  end();
  end();
  families = parseExposition(await metrics.render());
  assert.equal(sample(families, 'tscri_stream_sessions_active', { kind: 'exec' }), 0, 'an ended session counts down once');
});

test('standard process metrics come with collectProcessMetrics', async () => {
  const metrics = new Metrics();
  assert.equal(parseExposition(await metrics.render()).has('process_cpu_seconds_total'), false);
  metrics.collectProcessMetrics();
  metrics.collectProcessMetrics();
  const families = parseExposition(await metrics.render());
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
    'process_start_time_seconds',
    'nodejs_eventloop_lag_seconds',
  ]) {
    assert.ok(families.has(name), name);
  }
});

test('the README lists every metric name the daemon exposes', async () => {
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Metrics'), readme.indexOf('\n## ', readme.indexOf('\n## Metrics') + 1));
  const metrics = new Metrics();
  metrics.collectProcessMetrics();
  const names = [...parseExposition(await metrics.render()).keys()];
  assert.ok(names.length > 30);
  const missing = names.filter((name) => !section.includes(`\`${name}\``));
  assert.deepEqual(missing, []);
});
