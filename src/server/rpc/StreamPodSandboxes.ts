// StreamPodSandboxes: ListPodSandbox as a stream of batches, for nodes with many pods.
import type { StreamPodSandboxesRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxesRequest.ts';
import type { StreamPodSandboxesResponse } from '../../generated/runtime/v1/StreamPodSandboxesResponse.ts';
import { serverStream } from '../handler.ts';

const BATCH = 100;

export default serverStream<StreamPodSandboxesRequest__Output, StreamPodSandboxesResponse>(async (ctx, req, send, call) => {
  const items = await ctx.sandboxes.list(req.filter);
  for (let i = 0; i < items.length && !call.signal.aborted; i += BATCH) {
    await send({ pod_sandboxes: items.slice(i, i + BATCH) });
  }
});
