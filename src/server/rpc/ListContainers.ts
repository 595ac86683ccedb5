// ListContainers: every container matching the filter (id prefix, state, pod id, labels).
import type { ListContainersRequest__Output } from '../../generated/runtime/v1/ListContainersRequest.ts';
import type { ListContainersResponse } from '../../generated/runtime/v1/ListContainersResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListContainersRequest__Output, ListContainersResponse>(async (ctx, req) => {
  return { containers: ctx.containers.list(req.filter) };
});
