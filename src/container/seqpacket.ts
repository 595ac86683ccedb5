// SOCK_SEQPACKET unix sockets, which Node lacks, through koffi: conmon's
// attach socket is one. Kept small on purpose:
//   - connect() is a plain blocking connect (a local socket answers at once);
//   - reads: one poll() call on a libuv worker thread (koffi's async call)
//     watches every open socket, with a short timeout so sockets opened
//     meanwhile join the next round; ready sockets are drained on the main
//     thread with non-blocking recv(). One worker thread is busy only while
//     at least one socket is open.
//   - writes: non-blocking send(); a packet that does not fit waits for the
//     next round (poll also asks for POLLOUT then).
// Each recv() returns one whole packet, so conmon's one-byte stream prefix
// always starts a message.
import { EventEmitter } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { AF_UNIX, libc, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_SEQPACKET, SUN_PATH_MAX } from '../sys/libc.ts';

const POLLIN = 0x1;
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const EAGAIN = 11;
const EINTR = 4;
const SHUT_WR = 1;
const POLL_TIMEOUT_MS = 50;
/** conmon sends at most 8 KiB + 1 per packet; leave room. */
const RECV_SIZE = 64 * 1024;

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  connect: libc.func('int connect(int fd, const uint8_t *addr, uint32_t len)'),
  recv: libc.func('intptr_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
  send: libc.func('intptr_t send(int fd, const uint8_t *buf, size_t len, int flags)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
  close: libc.func('int close(int fd)'),
  poll: libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)'),
};

function sockaddr(path: string): Buffer {
  const bytes = Buffer.from(path);
  if (bytes.length >= SUN_PATH_MAX) throw new Error(`socket path too long: ${path}`);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  return addr;
}

/** A connected SOCK_SEQPACKET socket. Events: 'message' (Buffer), 'close'. */
export class SeqpacketSocket extends EventEmitter {
  fd: number;
  private readonly pending: Buffer[] = [];
  private closed = false;
  private shutdownWhenFlushed = false;

  private constructor(fd: number) {
    super();
    this.fd = fd;
  }

  /**
   * Connects to the socket at dir/name. Going through /proc/self/fd/<dir fd>
   * lifts the 108-byte limit on socket paths.
   */
  static connect(dir: string, name: string): SeqpacketSocket {
    const dirFd = openSync(dir, 'r');
    try {
      const fd = c.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0) as number;
      if (fd < 0) throw new Error(`socket() failed: errno ${koffi.errno()}`);
      const addr = sockaddr(`/proc/self/fd/${dirFd}/${name}`);
      if ((c.connect(fd, addr, addr.length) as number) < 0) {
        const err = koffi.errno();
        c.close(fd);
        throw new Error(`cannot connect to ${dir}/${name}: errno ${err}`);
      }
      const socket = new SeqpacketSocket(fd);
      poller.add(socket);
      return socket;
    } finally {
      closeSync(dirFd);
    }
  }

  /** Queues one packet; returns false when the socket is closed. */
  send(data: Buffer): boolean {
    if (this.closed) return false;
    this.pending.push(data);
    this.flush();
    return true;
  }

  get wantsWrite(): boolean {
    return this.pending.length > 0;
  }

  /** Sends what the kernel accepts now; the rest waits for POLLOUT. */
  flush(): void {
    while (this.pending.length && !this.closed) {
      const data = this.pending[0]!;
      const n = c.send(this.fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL) as number;
      if (n < 0) {
        const err = koffi.errno();
        if (err === EAGAIN || err === EINTR) return;
        this.close();
        return;
      }
      this.pending.shift();
    }
    if (!this.pending.length && !this.closed) {
      if (this.shutdownWhenFlushed) {
        this.shutdownWhenFlushed = false;
        c.shutdown(this.fd, SHUT_WR);
      }
      this.emit('flushed');
    }
  }

  /** Resolves once every queued packet was sent (or the socket closed). */
  flushed(): Promise<void> {
    if (!this.pending.length || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.off('flushed', done);
        this.off('close', done);
        resolve();
      };
      this.on('flushed', done);
      this.on('close', done);
    });
  }

  /** Reads every packet available now; closes on end of stream. */
  drain(): void {
    const buf = Buffer.alloc(RECV_SIZE);
    while (!this.closed) {
      const n = c.recv(this.fd, buf, buf.length, MSG_DONTWAIT) as number;
      if (n < 0) {
        const err = koffi.errno();
        if (err === EAGAIN || err === EINTR) return;
        this.close();
        return;
      }
      if (n === 0) {
        this.close();
        return;
      }
      this.emit('message', Buffer.from(buf.subarray(0, n)));
    }
  }

  /**
   * Tells the peer no more data follows, once the packets queued before are
   * sent (conmon then closes the process's stdin, unless --leave-stdin-open).
   */
  endWrite(): void {
    if (this.closed) return;
    if (this.pending.length) this.shutdownWhenFlushed = true;
    else c.shutdown(this.fd, SHUT_WR);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    poller.remove(this);
    c.close(this.fd);
    this.fd = -1;
    this.emit('close');
  }
}

/** The single poll loop shared by all open sockets. */
class Poller {
  private readonly sockets = new Set<SeqpacketSocket>();
  private running = false;

  add(socket: SeqpacketSocket): void {
    this.sockets.add(socket);
    if (!this.running) this.round();
  }

  remove(socket: SeqpacketSocket): void {
    this.sockets.delete(socket);
  }

  private round(): void {
    const list = [...this.sockets];
    if (!list.length) {
      this.running = false;
      return;
    }
    this.running = true;
    const fds = Buffer.alloc(8 * list.length);
    list.forEach((s, i) => {
      fds.writeInt32LE(s.fd, i * 8);
      fds.writeInt16LE(POLLIN | (s.wantsWrite ? POLLOUT : 0), i * 8 + 4);
    });
    c.poll.async(fds, list.length, POLL_TIMEOUT_MS, (err: unknown, ready: number) => {
      if (!err && ready > 0) {
        list.forEach((s, i) => {
          const revents = fds.readInt16LE(i * 8 + 6);
          if (revents & POLLOUT) s.flush();
          if (revents & (POLLIN | POLLHUP | POLLERR)) s.drain();
        });
      }
      setImmediate(() => this.round());
    });
  }
}

const poller = new Poller();
