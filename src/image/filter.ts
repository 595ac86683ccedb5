// The ListImages filter: no image named means all images.
import type { ImageRecord } from './record.ts';

export function filterImages(images: { list(): ImageRecord[]; find(ref: string): ImageRecord | undefined }, ref: string | undefined): ImageRecord[] {
  if (!ref) return images.list();
  const found = images.find(ref);
  return found ? [found] : [];
}
