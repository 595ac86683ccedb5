// ListImages: every image, or the one the filter names.
import type { ListImagesRequest__Output } from '../../generated/runtime/v1/ListImagesRequest.ts';
import type { ListImagesResponse } from '../../generated/runtime/v1/ListImagesResponse.ts';
import { unary } from '../handler.ts';
import { filterImages } from '../../image/filter.ts';

export default unary<ListImagesRequest__Output, ListImagesResponse>(async (ctx, req) => ({
  images: ctx.images.render(filterImages(ctx.images, req.filter?.image?.image)),
}));
