// The C library, loaded once, for the few syscalls Node lacks (mount, mknod,
// xattrs, posix_spawn, seqpacket and datagram sockets), and the errno names
// their failures carry.
import { constants } from 'node:os';
import koffi from 'koffi';

export const libc = koffi.load('libc.so.6');

// Socket constants of Linux (x86-64 and arm64 alike).
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
/** Bytes of sockaddr_un.sun_path. */
export const SUN_PATH_MAX = 108;

/** The errno of the last call made through koffi on this thread. */
export const lastErrno = (): number => koffi.errno();

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** `ENOENT` for 2; `errno N` for a number the platform does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** A failed syscall, with the errno name (`ENOENT`) as `code` like Node's own errors. */
export class SyscallError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(what: string, errno: number) {
    const code = errnoName(errno);
    super(`${what}: ${code}`);
    this.code = code;
    this.errno = errno;
  }
}
