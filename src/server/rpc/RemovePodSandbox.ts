// RemovePodSandbox: removes the pod, its containers and everything it holds; idempotent.
import type { RemovePodSandboxRequest__Output } from '../../generated/runtime/v1/RemovePodSandboxRequest.ts';
import type { RemovePodSandboxResponse } from '../../generated/runtime/v1/RemovePodSandboxResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { unary } from '../handler.ts';

export default unary<RemovePodSandboxRequest__Output, RemovePodSandboxResponse>(async (ctx, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument('RemovePodSandbox needs a pod_sandbox_id');
  await ctx.sandboxes.remove(req.pod_sandbox_id);
  return {};
});
