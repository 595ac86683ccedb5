// StreamPodSandboxStats: ListPodSandboxStats as a stream of batches.
import type { StreamPodSandboxStatsRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxStatsRequest.ts';
import type { StreamPodSandboxStatsResponse } from '../../generated/runtime/v1/StreamPodSandboxStatsResponse.ts';
import { serverStream } from '../handler.ts';

const BATCH = 50;

export default serverStream<StreamPodSandboxStatsRequest__Output, StreamPodSandboxStatsResponse>(async (ctx, req, send, call) => {
  const stats = await ctx.stats.podStats(req.filter ?? {});
  for (let i = 0; i < stats.length && !call.signal.aborted; i += BATCH) await send({ pod_sandbox_stats: stats.slice(i, i + BATCH) });
});
