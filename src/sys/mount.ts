// mount(2) and umount2(2) through koffi, instead of running mount(8) and
// umount(8): a call costs microseconds instead of a process start.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants } from 'node:os';
import { errnoName, lastErrno, libc } from './libc.ts';

const c = {
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
};

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
const MNT_DETACH = 0x2;
/** Stacked mounts unmounted at one target before giving up. */
const MAX_STACKED = 16;

/** A failed mount or unmount, with the errno name (`EBUSY`) as `code` like Node's own errors. */
export class MountError extends Error {
  readonly code: string;
  constructor(what: string, errno: number) {
    const code = errnoName(errno);
    super(`${what}: ${code}`);
    this.code = code;
  }
}

/** C strings end at NUL: a string holding one would name something else than asked for. */
function checkString(what: string, value: string): void {
  if (value.includes('\0')) throw new MountError(`${what} ${JSON.stringify(value)} contains a NUL byte`, constants.errno.EINVAL);
}

/** Mounts a filesystem: mount(source, target, fstype, flags, data). */
export function mount(source: string, target: string, fstype: string, flags: number, data = ''): void {
  for (const [what, value] of [
    ['source', source],
    ['target', target],
    ['type', fstype],
    ['options', data],
  ] as const)
    checkString(what, value);
  if ((c.mount(source, target, fstype, flags, data || null) as number) !== 0) {
    throw new MountError(`cannot mount ${fstype} at ${target}`, lastErrno());
  }
}

/**
 * Unmounts everything mounted at target (stacked mounts too); a busy mount
 * is detached lazily. A target that is no mount point, or does not exist,
 * is fine. Returns how many mounts went.
 */
export function unmountAll(target: string): number {
  checkString('target', target);
  for (let n = 0; n < MAX_STACKED; n++) {
    if ((c.umount2(target, 0) as number) === 0) continue;
    const errno = lastErrno();
    if (errno === constants.errno.EINVAL || errno === constants.errno.ENOENT) return n;
    if (errno === constants.errno.EBUSY && (c.umount2(target, MNT_DETACH) as number) === 0) continue;
    throw new MountError(`cannot unmount ${target}`, errno === constants.errno.EBUSY ? lastErrno() : errno);
  }
  return MAX_STACKED;
}

/**
 * Whether something is mounted at dir, told by its device differing from
 * its parent's: true for the overlay and tmpfs mounts made here, without
 * reading the mount table. (A bind mount from the same filesystem would not
 * show; use the mount table for those.)
 */
export function hasOwnDevice(dir: string): boolean {
  try {
    return statSync(dir).dev !== statSync(dirname(dir)).dev;
  } catch {
    return false;
  }
}
