// UpdateContainerResources: new cgroup limits for a created or running container (`runc update`).
import type { UpdateContainerResourcesRequest__Output } from '../../generated/runtime/v1/UpdateContainerResourcesRequest.ts';
import type { UpdateContainerResourcesResponse } from '../../generated/runtime/v1/UpdateContainerResourcesResponse.ts';
import { unary } from '../handler.ts';
import { checkContainerResources, refuseNul } from '../../oci/request-checks.ts';

export default unary<UpdateContainerResourcesRequest__Output, UpdateContainerResourcesResponse>(async (ctx, req) => {
  if (req.linux) {
    refuseNul(req.linux, 'linux');
    checkContainerResources(req.linux);
  }
  await ctx.containers.update(req.container_id, req.linux);
  return {};
});
