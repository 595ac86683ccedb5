// ImageStatus: one image by id, tag or digest; an unknown image is an empty answer.
// Verbose info names the image's chain id `chainID` (the top layer's, as
// containerd does) and keeps each layer's chain id in `layerChainIDs`.
import type { ImageStatusRequest__Output } from '../../generated/runtime/v1/ImageStatusRequest.ts';
import type { ImageStatusResponse } from '../../generated/runtime/v1/ImageStatusResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument } from '../../errors.ts';

export default unary<ImageStatusRequest__Output, ImageStatusResponse>(async (ctx, req) => {
  const ref = req.image?.image ?? '';
  if (!ref) throw invalidArgument('image.image is required');
  const record = ctx.images.find(ref);
  if (!record) return { image: null, info: {} };
  const info: Record<string, string> = req.verbose
    ? {
        info: JSON.stringify({
          id: record.id,
          manifestDigest: record.manifestDigest,
          layers: record.layers,
          chainID: record.chainIds.at(-1) ?? '',
          layerChainIDs: record.chainIds,
          imageSpec: record.config,
          pulledAt: new Date(record.pulledAt).toISOString(),
        }),
      }
    : {};
  const [image] = ctx.images.render([record]);
  if (!image) return { image: null, info: {} };
  return { image, info };
});
