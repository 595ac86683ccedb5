// ContainerStats: CPU, memory, swap and writable-layer usage of one container.
import type { ContainerStatsRequest__Output } from '../../generated/runtime/v1/ContainerStatsRequest.ts';
import type { ContainerStatsResponse } from '../../generated/runtime/v1/ContainerStatsResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument, notFound, quote } from '../../errors.ts';

export default unary<ContainerStatsRequest__Output, ContainerStatsResponse>(async (ctx, req) => {
  if (!req.container_id) throw invalidArgument('container_id is required');
  const record = ctx.containers.find(req.container_id);
  if (!record) throw notFound(`container ${quote(req.container_id)} not found`);
  return { stats: await ctx.stats.oneContainer(record) };
});
