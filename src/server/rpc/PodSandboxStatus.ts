// PodSandboxStatus: state, network, namespaces, and verbose details of one pod.
import type { PodSandboxStatusRequest__Output } from '../../generated/runtime/v1/PodSandboxStatusRequest.ts';
import type { PodSandboxStatusResponse } from '../../generated/runtime/v1/PodSandboxStatusResponse.ts';
import { unary } from '../handler.ts';

export default unary<PodSandboxStatusRequest__Output, PodSandboxStatusResponse>(async (ctx, req) => {
  return ctx.sandboxes.status(req.pod_sandbox_id, req.verbose);
});
