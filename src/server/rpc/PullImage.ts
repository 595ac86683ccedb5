// PullImage: fetches an image from its registry (or a configured mirror) and returns its id.
import type { PullImageRequest__Output } from '../../generated/runtime/v1/PullImageRequest.ts';
import type { PullImageResponse } from '../../generated/runtime/v1/PullImageResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument } from '../../errors.ts';
import { credentialsFrom } from '../../image/service.ts';
import { pullError } from '../../image/errors.ts';

export default unary<PullImageRequest__Output, PullImageResponse>(async (ctx, req, call) => {
  const image = req.image?.image ?? '';
  if (!image) throw invalidArgument('image.image is required');
  try {
    return { image_ref: await ctx.images.pull(image, credentialsFrom(req.auth), call.signal, call.deadline) };
  } catch (err) {
    throw pullError(image, err, ctx.config.root);
  }
});
