// ReopenContainerLog: conmon reopens the log file after kubelet rotated it.
import type { ReopenContainerLogRequest__Output } from '../../generated/runtime/v1/ReopenContainerLogRequest.ts';
import type { ReopenContainerLogResponse } from '../../generated/runtime/v1/ReopenContainerLogResponse.ts';
import { unary } from '../handler.ts';

export default unary<ReopenContainerLogRequest__Output, ReopenContainerLogResponse>(async (ctx, req) => {
  await ctx.containers.reopenLog(req.container_id);
  return {};
});
