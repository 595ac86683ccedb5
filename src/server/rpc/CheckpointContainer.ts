// CheckpointContainer: a running container's processes (CRIU) and file changes written to an archive at `location`; it keeps running.
import type { CheckpointContainerRequest__Output } from '../../generated/runtime/v1/CheckpointContainerRequest.ts';
import type { CheckpointContainerResponse } from '../../generated/runtime/v1/CheckpointContainerResponse.ts';
import { unary } from '../handler.ts';

export default unary<CheckpointContainerRequest__Output, CheckpointContainerResponse>(async (ctx, req, call) => {
  await ctx.containers.checkpoint(req.container_id, req.location, Math.max(0, req.timeout), call.signal);
  return {};
});
