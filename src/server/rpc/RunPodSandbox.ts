// RunPodSandbox: creates and starts a pod sandbox; answers its id.
import type { RunPodSandboxRequest__Output } from '../../generated/runtime/v1/RunPodSandboxRequest.ts';
import type { RunPodSandboxResponse } from '../../generated/runtime/v1/RunPodSandboxResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { unary } from '../handler.ts';

export default unary<RunPodSandboxRequest__Output, RunPodSandboxResponse>(async (ctx, req) => {
  if (!req.config) throw invalidArgument('RunPodSandbox needs a config');
  const id = await ctx.sandboxes.run(req.config, req.runtime_handler);
  return { pod_sandbox_id: id };
});
