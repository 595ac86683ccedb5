// CreateContainer: a container in a ready pod from a pulled image; conmon holds it created until StartContainer.
import type { CreateContainerRequest__Output } from '../../generated/runtime/v1/CreateContainerRequest.ts';
import type { CreateContainerResponse } from '../../generated/runtime/v1/CreateContainerResponse.ts';
import { unary } from '../handler.ts';

export default unary<CreateContainerRequest__Output, CreateContainerResponse>(async (ctx, req) => {
  const container_id = await ctx.containers.create(req.pod_sandbox_id, req.config, req.sandbox_config);
  return { container_id };
});
