import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../../src/server/metrics.ts';

test('calls are counted by RPC and code, with latency buckets', () => {
  const metrics = new Metrics();
  metrics.observe('Version', 'OK', 0.002);
  metrics.observe('Version', 'OK', 0.2);
  metrics.observe('PullImage', 'NOT_FOUND', 3);
  const text = metrics.render();
  assert.match(text, /tscri_grpc_requests_total\{rpc="Version",code="OK"\} 2/);
  assert.match(text, /tscri_grpc_requests_total\{rpc="PullImage",code="NOT_FOUND"\} 1/);
  assert.match(text, /tscri_grpc_request_duration_seconds_bucket\{rpc="Version",le="0.005"\} 1/);
  assert.match(text, /tscri_grpc_request_duration_seconds_bucket\{rpc="Version",le="0.25"\} 2/);
  assert.match(text, /tscri_grpc_request_duration_seconds_count\{rpc="PullImage"\} 1/);
  assert.match(text, /tscri_process_resident_memory_bytes \d+/);
});
