// StreamPodSandboxMetrics: ListPodSandboxMetrics as a stream of batches.
import type { StreamPodSandboxMetricsRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxMetricsRequest.ts';
import type { StreamPodSandboxMetricsResponse } from '../../generated/runtime/v1/StreamPodSandboxMetricsResponse.ts';
import { serverStream } from '../handler.ts';

const BATCH = 50;

export default serverStream<StreamPodSandboxMetricsRequest__Output, StreamPodSandboxMetricsResponse>(async (ctx, _req, send, call) => {
  const metrics = await ctx.stats.podMetrics();
  for (let i = 0; i < metrics.length && !call.signal.aborted; i += BATCH) await send({ pod_sandbox_metrics: metrics.slice(i, i + BATCH) });
});
