// ListPodSandboxStats: usage of every pod matching the filter.
import type { ListPodSandboxStatsRequest__Output } from '../../generated/runtime/v1/ListPodSandboxStatsRequest.ts';
import type { ListPodSandboxStatsResponse } from '../../generated/runtime/v1/ListPodSandboxStatsResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListPodSandboxStatsRequest__Output, ListPodSandboxStatsResponse>(async (ctx, req) => {
  const stats = await ctx.stats.podStats(req.filter ?? {});
  ctx.stats.prune();
  return { stats };
});
