// RemoveImage: removes an image by id, tag or digest; an absent image is success.
import type { RemoveImageRequest__Output } from '../../generated/runtime/v1/RemoveImageRequest.ts';
import type { RemoveImageResponse } from '../../generated/runtime/v1/RemoveImageResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument } from '../../errors.ts';

export default unary<RemoveImageRequest__Output, RemoveImageResponse>(async (ctx, req) => {
  const ref = req.image?.image ?? '';
  if (!ref) throw invalidArgument('image.image is required');
  await ctx.images.remove(ref);
  return {};
});
