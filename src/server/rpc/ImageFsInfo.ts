// ImageFsInfo: bytes and inodes used by images and by containers' writable layers.
import type { ImageFsInfoRequest__Output } from '../../generated/runtime/v1/ImageFsInfoRequest.ts';
import type { ImageFsInfoResponse } from '../../generated/runtime/v1/ImageFsInfoResponse.ts';
import { unary } from '../handler.ts';

export default unary<ImageFsInfoRequest__Output, ImageFsInfoResponse>(async (ctx) => {
  const usage = await ctx.images.fsUsage();
  const timestamp = Date.now() * 1e6;
  const fs = (u: { bytes: number; inodes: number }) => ({
    timestamp,
    fs_id: { mountpoint: ctx.snapshots.mountpoint() },
    used_bytes: { value: u.bytes },
    inodes_used: { value: u.inodes },
  });
  return { image_filesystems: [fs(usage.images)], container_filesystems: [fs(usage.containers)] };
});
