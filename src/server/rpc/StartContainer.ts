// StartContainer: runs the created container's process (`runc start`).
import type { StartContainerRequest__Output } from '../../generated/runtime/v1/StartContainerRequest.ts';
import type { StartContainerResponse } from '../../generated/runtime/v1/StartContainerResponse.ts';
import { unary } from '../handler.ts';

export default unary<StartContainerRequest__Output, StartContainerResponse>(async (ctx, req) => {
  await ctx.containers.start(req.container_id);
  return {};
});
