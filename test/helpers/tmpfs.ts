// A small tmpfs of its own for a test, to run out of disk space on purpose.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  /** Unmounts it (lazily, should something still hold it) and removes the mount point. */
  remove(): Promise<void>;
}

export async function mountTmpfs(bytes: number): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir]);
  return {
    dir,
    async remove() {
      execFileSync('umount', ['-l', dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
