// ListContainerStats: usage of every container matching the filter, in one pass over the cgroups.
import type { ListContainerStatsRequest__Output } from '../../generated/runtime/v1/ListContainerStatsRequest.ts';
import type { ListContainerStatsResponse } from '../../generated/runtime/v1/ListContainerStatsResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListContainerStatsRequest__Output, ListContainerStatsResponse>(async (ctx, req) => {
  const stats = await ctx.stats.containerStats(req.filter ?? {});
  ctx.stats.prune();
  return { stats };
});
