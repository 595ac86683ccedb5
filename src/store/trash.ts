// Deletion after the answer: a directory to delete is renamed, in one step,
// into a trash directory on the same filesystem (its name is free at once,
// and a crash never leaves part of it under its old name), and deleted in
// the background one entry at a time. What a crash left in the trash is
// deleted at the next start.
//
// The cleaner never follows a symlink (an entry, or anything inside one, is
// looked at with lstat and a link is unlinked itself) and never descends
// into another filesystem (a directory whose device differs from its
// parent's is a mount point: it is left, with a warning, rather than emptied).
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface TrashLog {
  warn(obj: object, msg: string): void;
}

export class Trash {
  readonly dir: string;
  private readonly log: TrashLog | undefined;
  private queue: string[] = [];
  private running: Promise<void> | undefined;

  constructor(dir: string, log?: TrashLog) {
    this.dir = dir;
    this.log = log;
  }

  /** Makes the trash directory (root's only) and starts deleting what an earlier run left in it. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const left = await readdir(this.dir);
    if (left.length) this.schedule(left.map((name) => join(this.dir, name)));
  }

  /**
   * Moves path into the trash and deletes it after this returns. A missing
   * path is fine (removal stays idempotent). Across filesystems, or before
   * open(), path is deleted now.
   */
  async discard(path: string): Promise<void> {
    const entry = join(this.dir, `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
    try {
      await rename(path, entry);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !(await exists(path))) return;
      // EXDEV: another filesystem; ENOENT with path present: no trash directory.
      await rm(path, { recursive: true, force: true });
      return;
    }
    this.schedule([entry]);
  }

  /** Resolves once everything put in the trash so far is deleted (or given up on). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Entries waiting or being deleted. */
  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  private schedule(entries: string[]): void {
    this.queue.push(...entries);
    if (this.running) return;
    this.running = (async () => {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        await removeTree(next).catch((err) => this.log?.warn({ path: next, err: String(err) }, 'cannot delete an entry of the trash'));
      }
    })().finally(() => {
      this.running = undefined;
    });
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Deletes path without following symlinks or crossing into another
 * filesystem: a directory on a device other than parentDev (a mount point)
 * is left as it is, and the rest is still deleted.
 */
export async function removeTree(path: string, parentDev?: number): Promise<void> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!info) return;
  if (!info.isDirectory()) return unlinkIfThere(path);
  if (parentDev !== undefined && info.dev !== parentDev) throw new Error(`${path} is on another filesystem (a mount point); it is left in place`);
  let failure: unknown;
  for (const child of await readdir(path, { withFileTypes: true })) {
    const childPath = join(path, child.name);
    // The type comes from the directory entry itself: a symlink is a symlink, never its target.
    const done = child.isDirectory() ? removeTree(childPath, info.dev) : unlinkIfThere(childPath);
    await done.catch((err: unknown) => {
      failure ??= err;
    });
  }
  if (failure) throw failure;
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function unlinkIfThere(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
