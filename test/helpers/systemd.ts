// What systemd gives a service, made by hand for tests: a NOTIFY_SOCKET
// datagram socket that collects notifications, and a listening unix stream
// socket to hand in as LISTEN_FDS. Made through libc (koffi), since Node has
// no unix datagram sockets and cannot give a child a listening descriptor.
import koffi from 'koffi';

const AF_UNIX = 1;
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;

const libc = koffi.load('libc.so.6');
const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const uint8_t *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  recv: libc.func('intptr_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
  close: libc.func('int close(int fd)'),
};

function unixAddress(path: string): Buffer {
  const name = Buffer.from(path);
  if (path.startsWith('@')) name[0] = 0;
  const addr = Buffer.alloc(2 + name.length + (path.startsWith('@') ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

export interface NotifySocket {
  /** The NOTIFY_SOCKET value. */
  address: string;
  /** Every notification received so far, one parsed datagram each. */
  messages(): Array<Record<string, string>>;
  /** Waits (bounded) for a notification matching the predicate. */
  waitFor(match: (m: Record<string, string>) => boolean, what: string): Promise<Record<string, string>>;
  close(): void;
}

/** A datagram socket bound at path ("@name" for the abstract namespace). */
export function notifySocket(path: string): NotifySocket {
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new Error(`socket: errno ${koffi.errno()}`);
  const addr = unixAddress(path);
  if ((c.bind(fd, addr, addr.length) as number) !== 0) throw new Error(`bind ${path}: errno ${koffi.errno()}`);
  const received: Array<Record<string, string>> = [];
  const buf = Buffer.alloc(65536);
  const drain = () => {
    for (;;) {
      const n = Number(c.recv(fd, buf, buf.length, MSG_DONTWAIT));
      if (n <= 0) return;
      const fields: Record<string, string> = {};
      for (const line of buf.subarray(0, n).toString().split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
      }
      received.push(fields);
    }
  };
  return {
    address: path,
    messages() {
      drain();
      return received;
    },
    async waitFor(match, what) {
      for (let i = 0; i < 400; i++) {
        drain();
        const found = received.find(match);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no notification ${what} arrived; got ${JSON.stringify(received)}`);
    },
    close() {
      c.close(fd);
    },
  };
}

/** A listening unix stream socket at path; returns its descriptor (not close-on-exec, as systemd hands it). */
export function listeningUnixSocket(path: string): number {
  const fd = c.socket(AF_UNIX, SOCK_STREAM, 0) as number;
  const addr = unixAddress(path);
  if ((c.bind(fd, addr, addr.length) as number) !== 0) throw new Error(`bind ${path}: errno ${koffi.errno()}`);
  if ((c.listen(fd, 64) as number) !== 0) throw new Error(`listen: errno ${koffi.errno()}`);
  return fd;
}

/** A listening TCP socket on 127.0.0.1 (an ephemeral port): what tscri must refuse to serve the CRI on. */
export function listeningTcpSocket(): number {
  const fd = c.socket(AF_INET, SOCK_STREAM, 0) as number;
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(AF_INET, 0);
  addr.writeUInt16BE(0, 2);
  Buffer.from([127, 0, 0, 1]).copy(addr, 4);
  if ((c.bind(fd, addr, addr.length) as number) !== 0) throw new Error(`bind: errno ${koffi.errno()}`);
  if ((c.listen(fd, 4) as number) !== 0) throw new Error(`listen: errno ${koffi.errno()}`);
  return fd;
}

/** An unbound datagram socket, also not servable. */
export function datagramSocket(): number {
  return c.socket(AF_UNIX, SOCK_DGRAM, 0) as number;
}

export function closeFd(fd: number): void {
  c.close(fd);
}
