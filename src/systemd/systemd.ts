// The two systemd protocols tscri speaks, with no libsystemd:
//
// - sd_notify: state changes (READY=1, RELOADING=1 with MONOTONIC_USEC,
//   STOPPING=1, STATUS=...) sent as one datagram each to the AF_UNIX
//   SOCK_DGRAM socket named by $NOTIFY_SOCKET (a path, or "@name" for the
//   abstract namespace). Node has no unix datagram sockets, so the socket is
//   made and sent on through libc (koffi), as for conmon's seqpacket socket.
//   Sending never blocks (MSG_DONTWAIT) and never fails the daemon: a lost
//   notification is logged once.
// - socket activation: $LISTEN_PID/$LISTEN_FDS/$LISTEN_FDNAMES name listening
//   sockets handed in from fd 3 on (sd_listen_fds). tscri serves gRPC on the
//   one named "cri" (FileDescriptorName= in tscri.socket), or on the only one.
//   It must be a listening AF_UNIX stream socket: anything else is refused.
//
// The variables are removed from the environment once read, so that runc,
// conmon and CNI plugins never see them (runc gives NOTIFY_SOCKET a meaning
// of its own).
import { fstatSync } from 'node:fs';
import koffi from 'koffi';
import { AF_UNIX, libc, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM, SUN_PATH_MAX } from '../sys/libc.ts';

const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ACCEPTCONN = 30;
/** Longest value sent (a STATUS quoting an error is shortened). */
const STATUS_MAX = 1000;
/** The first inherited descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** The name tscri.socket gives the CRI socket (FileDescriptorName=). */
export const CRI_FD_NAME = 'cri';

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  sendto: libc.func('intptr_t sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)'),
  close: libc.func('int close(int fd)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint8_t *len)'),
  getsockname: libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint8_t *len)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
};
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** The sockaddr_un of a NOTIFY_SOCKET value: a path, or "@name" in the abstract namespace. */
export function notifyAddress(value: string): Buffer {
  if (!value.startsWith('/') && !value.startsWith('@'))
    throw new Error(`NOTIFY_SOCKET ${JSON.stringify(value.slice(0, 100))} is neither an absolute path nor an abstract socket (@name)`);
  const name = Buffer.from(value);
  if (value.startsWith('@')) name[0] = 0;
  // A path needs room for its terminating NUL; an abstract name does not.
  if (name.length > SUN_PATH_MAX - (value.startsWith('@') ? 0 : 1))
    throw new Error(`NOTIFY_SOCKET is longer than a unix socket address can be (${SUN_PATH_MAX} bytes)`);
  const addr = Buffer.alloc(2 + name.length + (value.startsWith('@') ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

/** CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC wants it (libuv's hrtime reads that clock on Linux). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** The state messages of sd_notify(3); each call sends one datagram. */
export class Notifier {
  private readonly address: Buffer | undefined;
  private readonly onError: (message: string) => void;
  private failed = false;

  /** address: the NOTIFY_SOCKET value, or undefined when not run by systemd (then every call does nothing). */
  constructor(address: string | undefined, onError: (message: string) => void = () => undefined) {
    this.onError = onError;
    if (!address) return;
    try {
      this.address = notifyAddress(address);
    } catch (err) {
      onError((err as Error).message);
    }
  }

  get enabled(): boolean {
    return this.address !== undefined;
  }

  ready(status: string): void {
    this.send({ READY: '1', STATUS: status, MAINPID: String(process.pid) });
  }

  /** Before a reload: systemd measures the reload from MONOTONIC_USEC until the next ready(). */
  reloading(status: string): void {
    this.send({ RELOADING: '1', MONOTONIC_USEC: String(monotonicUsec()), STATUS: status });
  }

  stopping(status: string): void {
    this.send({ STOPPING: '1', STATUS: status });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  /** Sends one notification; variables are KEY=value lines (values on one line). */
  send(fields: Record<string, string>): boolean {
    if (!this.address) return false;
    const text =
      Object.entries(fields)
        .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ').slice(0, STATUS_MAX)}`)
        .join('\n') + '\n';
    const data = Buffer.from(text);
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) return this.fail(`cannot open a socket to notify systemd: errno ${koffi.errno()}`);
    try {
      const n = Number(c.sendto(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, this.address, this.address.length));
      if (n !== data.length) return this.fail(`cannot notify systemd on NOTIFY_SOCKET: errno ${koffi.errno()}`);
      return true;
    } finally {
      c.close(fd);
    }
  }

  private fail(message: string): boolean {
    if (!this.failed) this.onError(message);
    this.failed = true;
    return false;
  }
}

export interface InheritedSocket {
  fd: number;
  /** The socket's path (empty for an abstract or unnamed socket). */
  path: string;
  name: string;
}

export class ActivationError extends Error {}

function sockopt(fd: number, name: number): number | undefined {
  const value = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  if ((c.getsockopt(fd, SOL_SOCKET, name, value, len) as number) !== 0) return undefined;
  return value.readInt32LE(0);
}

/** The family and path of a bound socket. */
function socketName(fd: number): { family: number; path: string } | undefined {
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(addr.length, 0);
  if ((c.getsockname(fd, addr, len) as number) !== 0) return undefined;
  const family = addr.readUInt16LE(0);
  const size = Math.min(len.readUInt32LE(0), addr.length);
  const raw = addr.subarray(2, size);
  const nul = raw.indexOf(0);
  const path = raw.length && raw[0] !== 0 ? raw.subarray(0, nul < 0 ? raw.length : nul).toString() : '';
  return { family, path };
}

/**
 * The CRI socket systemd handed in, or undefined when tscri was not
 * socket-activated (no LISTEN_FDS, or LISTEN_PID names another process).
 * Clears the variables either way.
 */
export function inheritedSocket(env: NodeJS.ProcessEnv = process.env, pid = process.pid): InheritedSocket | undefined {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenFds === undefined || listenPid === undefined) return undefined;
  if (!/^\d{1,10}$/.test(listenPid) || Number(listenPid) !== pid) return undefined;
  if (!/^\d{1,4}$/.test(listenFds)) throw new ActivationError(`LISTEN_FDS=${JSON.stringify(listenFds.slice(0, 20))} is not a count of descriptors`);
  const count = Number(listenFds);
  if (count === 0) return undefined;
  const fdNames = names === undefined ? [] : names.split(':');
  let index = fdNames.indexOf(CRI_FD_NAME);
  if (index < 0) {
    if (count !== 1)
      throw new ActivationError(`systemd handed in ${count} sockets and none is named ${CRI_FD_NAME} (FileDescriptorName=${CRI_FD_NAME} in tscri.socket)`);
    index = 0;
  }
  if (index >= count) throw new ActivationError(`LISTEN_FDNAMES names ${CRI_FD_NAME} at position ${index + 1} but LISTEN_FDS is ${count}`);
  const fd = LISTEN_FDS_START + index;
  let isSocket = false;
  try {
    isSocket = fstatSync(fd).isSocket();
  } catch {
    throw new ActivationError(`descriptor ${fd} from LISTEN_FDS is not open`);
  }
  if (!isSocket) throw new ActivationError(`descriptor ${fd} from LISTEN_FDS is not a socket`);
  const name = socketName(fd);
  if (!name || name.family !== AF_UNIX)
    throw new ActivationError(
      `descriptor ${fd} from LISTEN_FDS is not a unix socket; the CRI is served on a unix socket only (ListenStream=/run/tscri/tscri.sock)`,
    );
  if (sockopt(fd, SO_TYPE) !== SOCK_STREAM)
    throw new ActivationError(`descriptor ${fd} from LISTEN_FDS is not a stream socket (ListenStream=, not ListenDatagram=)`);
  if (sockopt(fd, SO_ACCEPTCONN) !== 1) throw new ActivationError(`descriptor ${fd} from LISTEN_FDS is not listening`);
  // Inherited descriptors are not close-on-exec: runc, conmon (which outlives
  // tscri) and CNI plugins must not hold the CRI socket.
  c.fcntl(fd, F_SETFD, FD_CLOEXEC);
  return { fd, path: name.path, name: fdNames[index] ?? '' };
}

/** Reads NOTIFY_SOCKET and removes it from the environment. */
export function takeNotifySocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  return value || undefined;
}
