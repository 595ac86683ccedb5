// PodSandboxStats: usage of one pod: its cgroup, network, process count and its containers.
import type { PodSandboxStatsRequest__Output } from '../../generated/runtime/v1/PodSandboxStatsRequest.ts';
import type { PodSandboxStatsResponse } from '../../generated/runtime/v1/PodSandboxStatsResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument, notFound, quote } from '../../errors.ts';

export default unary<PodSandboxStatsRequest__Output, PodSandboxStatsResponse>(async (ctx, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument('pod_sandbox_id is required');
  const pod = ctx.sandboxes.get(req.pod_sandbox_id);
  if (!pod || pod.creating) throw notFound(`pod sandbox ${quote(req.pod_sandbox_id)} not found`);
  return { stats: await ctx.stats.onePod(pod) };
});
