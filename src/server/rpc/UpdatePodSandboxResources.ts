// UpdatePodSandboxResources: new limits for the pod cgroup.
import type { UpdatePodSandboxResourcesRequest__Output } from '../../generated/runtime/v1/UpdatePodSandboxResourcesRequest.ts';
import type { UpdatePodSandboxResourcesResponse } from '../../generated/runtime/v1/UpdatePodSandboxResourcesResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { unary } from '../handler.ts';

export default unary<UpdatePodSandboxResourcesRequest__Output, UpdatePodSandboxResourcesResponse>(async (ctx, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument('UpdatePodSandboxResources needs a pod_sandbox_id');
  await ctx.sandboxes.updateResources(req.pod_sandbox_id, req.overhead, req.resources);
  return {};
});
