// Disk usage of a directory tree (bytes in allocated blocks, and inodes),
// for ImageFsInfo and the writable-layer figures of container stats.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface Usage {
  bytes: number;
  inodes: number;
}

export interface UsageOptions {
  /**
   * Usage already known for a path (say, an immutable snapshot measured
   * once): counted as given, and the walk does not descend into it.
   */
  known?: (path: string) => Usage | undefined;
}

/**
 * Bytes and inodes under dir, without following symlinks. A file with
 * several hard links inside the tree is counted once, as the disk holds it.
 */
export async function diskUsage(dir: string, options: UsageOptions = {}): Promise<Usage> {
  let bytes = 0;
  let inodes = 0;
  const linked = new Set<string>();
  const walk = async (path: string): Promise<void> => {
    const known = options.known?.(path);
    if (known) {
      bytes += known.bytes;
      inodes += known.inodes;
      return;
    }
    const info = await lstat(path).catch(() => undefined);
    if (!info) return;
    if (info.nlink > 1 && !info.isDirectory()) {
      const key = `${info.dev}:${info.ino}`;
      if (linked.has(key)) return;
      linked.add(key);
    }
    inodes += 1;
    bytes += info.blocks * 512;
    if (!info.isDirectory()) return;
    const names = await readdir(path).catch(() => [] as string[]);
    for (const name of names) await walk(join(path, name));
  };
  await walk(dir);
  return { bytes, inodes };
}
