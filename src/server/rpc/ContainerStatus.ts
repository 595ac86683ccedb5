// ContainerStatus: state, times, exit code and reason, image, mounts, log path; runtime details when verbose.
import type { ContainerStatusRequest__Output } from '../../generated/runtime/v1/ContainerStatusRequest.ts';
import type { ContainerStatusResponse } from '../../generated/runtime/v1/ContainerStatusResponse.ts';
import { unary } from '../handler.ts';

export default unary<ContainerStatusRequest__Output, ContainerStatusResponse>(async (ctx, req) => {
  const { status, info } = await ctx.containers.status(req.container_id, req.verbose);
  return { status, info };
});
