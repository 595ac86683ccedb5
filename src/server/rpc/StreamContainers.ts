// StreamContainers: ListContainers as a stream of batches, for nodes with many containers.
import type { StreamContainersRequest__Output } from '../../generated/runtime/v1/StreamContainersRequest.ts';
import type { StreamContainersResponse } from '../../generated/runtime/v1/StreamContainersResponse.ts';
import { serverStream } from '../handler.ts';

const BATCH = 100;

export default serverStream<StreamContainersRequest__Output, StreamContainersResponse>(async (ctx, req, send, call) => {
  const items = ctx.containers.list(req.filter);
  for (let i = 0; i < items.length && !call.signal.aborted; i += BATCH) {
    await send({ containers: items.slice(i, i + BATCH) });
  }
});
