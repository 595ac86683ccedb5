// Reading a file of a container's root filesystem as the container would
// see it: symlinks are resolved inside the rootfs, never out of it.
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';

const MAX_LINKS = 40;
const MAX_SIZE = 4 * 1024 * 1024;

/** The host path of `path` inside root, with symlinks resolved as if root were /. */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  let parts = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, part);
    const info = await lstat(candidate).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new Error(`too many symlinks resolving ${path}`);
      const target = await readlink(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      parts = [...target.split('/').filter((p) => p && p !== '.'), ...parts];
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

/** The file's text, or undefined when it is missing, not a file, or too large. */
export async function readInRoot(root: string, path: string): Promise<string | undefined> {
  const file = await resolveInRoot(root, path);
  const info = await lstat(file).catch(() => undefined);
  if (!info?.isFile() || info.size > MAX_SIZE) return undefined;
  return readFile(file, 'utf8');
}
