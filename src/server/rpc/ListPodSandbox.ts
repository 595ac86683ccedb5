// ListPodSandbox: the pods matching an optional id prefix, state and label selector.
import type { ListPodSandboxRequest__Output } from '../../generated/runtime/v1/ListPodSandboxRequest.ts';
import type { ListPodSandboxResponse } from '../../generated/runtime/v1/ListPodSandboxResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListPodSandboxRequest__Output, ListPodSandboxResponse>(async (ctx, req) => {
  return { items: await ctx.sandboxes.list(req.filter) };
});
