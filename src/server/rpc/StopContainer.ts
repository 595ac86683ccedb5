// StopContainer: the stop signal, then SIGKILL after `timeout` seconds; idempotent.
import type { StopContainerRequest__Output } from '../../generated/runtime/v1/StopContainerRequest.ts';
import type { StopContainerResponse } from '../../generated/runtime/v1/StopContainerResponse.ts';
import { unary } from '../handler.ts';

export default unary<StopContainerRequest__Output, StopContainerResponse>(async (ctx, req) => {
  await ctx.containers.stop(req.container_id, Math.max(0, req.timeout));
  return {};
});
