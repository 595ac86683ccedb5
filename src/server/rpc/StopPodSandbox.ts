// StopPodSandbox: stops the pod's containers and releases its network; idempotent.
import type { StopPodSandboxRequest__Output } from '../../generated/runtime/v1/StopPodSandboxRequest.ts';
import type { StopPodSandboxResponse } from '../../generated/runtime/v1/StopPodSandboxResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { unary } from '../handler.ts';

export default unary<StopPodSandboxRequest__Output, StopPodSandboxResponse>(async (ctx, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument('StopPodSandbox needs a pod_sandbox_id');
  await ctx.sandboxes.stop(req.pod_sandbox_id);
  return {};
});
