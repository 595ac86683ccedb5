// StreamContainerStats: ListContainerStats as a stream of batches.
import type { StreamContainerStatsRequest__Output } from '../../generated/runtime/v1/StreamContainerStatsRequest.ts';
import type { StreamContainerStatsResponse } from '../../generated/runtime/v1/StreamContainerStatsResponse.ts';
import { serverStream } from '../handler.ts';

const BATCH = 100;

export default serverStream<StreamContainerStatsRequest__Output, StreamContainerStatsResponse>(async (ctx, req, send, call) => {
  const stats = await ctx.stats.containerStats(req.filter ?? {});
  for (let i = 0; i < stats.length && !call.signal.aborted; i += BATCH) await send({ container_stats: stats.slice(i, i + BATCH) });
});
