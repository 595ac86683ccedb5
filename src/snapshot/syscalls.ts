// The few filesystem syscalls Node lacks, called in libc through koffi:
// mknod (overlay whiteouts, device nodes, fifos), extended attributes on
// a path itself, never on what a symlink points to (the l* variants), and
// syncfs (an unpacked layer made durable before it becomes visible).
// libc is loaded once, when this module is first imported.
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants } from 'node:os';
import koffi from 'koffi';
import { libc, SyscallError } from '../sys/libc.ts';

const fns = {
  mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)'),
  lgetxattr: libc.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
  syncfs: libc.func('int syncfs(int fd)'),
};

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export { SyscallError };

/** makedev as glibc encodes it (major 12 bits + minor 20 bits, split as in sys/sysmacros.h). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/** Creates a device node or fifo; mode carries the file type (S_IF*) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  if (fns.mknod(path, mode, makedev(major, minor)) !== 0) throw new SyscallError(`mknod ${path}`, koffi.errno());
}

/** Sets an extended attribute on path itself (a symlink is not followed). */
export function lsetxattr(path: string, name: string, value: Buffer): void {
  if (fns.lsetxattr(path, name, value, value.length, 0) !== 0) throw new SyscallError(`setxattr ${name} on ${path}`, koffi.errno());
}

/** Reads an extended attribute of path itself; undefined when it is not set. */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  // Extended attribute values are at most 64 KiB (XATTR_SIZE_MAX).
  const buf = Buffer.alloc(65536);
  const n = Number(fns.lgetxattr(path, name, buf, buf.length));
  if (n >= 0) return Buffer.from(buf.subarray(0, n));
  const errno = koffi.errno();
  if (errno === constants.errno.ENODATA) return undefined;
  throw new SyscallError(`getxattr ${name} on ${path}`, errno);
}

/**
 * Flushes the filesystem holding path to disk. Runs on a worker thread:
 * with much dirty data the flush takes long, and the daemon keeps serving.
 */
export async function syncfs(path: string): Promise<void> {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    const result = await new Promise<number>((resolve, reject) => {
      fns.syncfs.async(fd, (err: unknown, value: number) => (err ? reject(err) : resolve(value)));
    });
    // errno is not reliable across koffi's worker thread; syncfs fails only for disk errors.
    if (result !== 0) throw new Error(`cannot flush ${path} to disk: the filesystem reported an error`);
  } finally {
    closeSync(fd);
  }
}
