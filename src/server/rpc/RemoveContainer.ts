// RemoveContainer: kills it if running and deletes everything but its log file; idempotent.
import type { RemoveContainerRequest__Output } from '../../generated/runtime/v1/RemoveContainerRequest.ts';
import type { RemoveContainerResponse } from '../../generated/runtime/v1/RemoveContainerResponse.ts';
import { unary } from '../handler.ts';

export default unary<RemoveContainerRequest__Output, RemoveContainerResponse>(async (ctx, req) => {
  await ctx.containers.remove(req.container_id);
  return {};
});
