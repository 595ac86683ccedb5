// StreamImages: ListImages as a stream of batches.
import type { StreamImagesRequest__Output } from '../../generated/runtime/v1/StreamImagesRequest.ts';
import type { StreamImagesResponse } from '../../generated/runtime/v1/StreamImagesResponse.ts';
import { serverStream } from '../handler.ts';
import { filterImages } from '../../image/filter.ts';

const BATCH = 100;

export default serverStream<StreamImagesRequest__Output, StreamImagesResponse>(async (ctx, req, send, call) => {
  const images = ctx.images.render(filterImages(ctx.images, req.filter?.image?.image));
  for (let i = 0; i < images.length && !call.signal.aborted; i += BATCH) await send({ images: images.slice(i, i + BATCH) });
});
