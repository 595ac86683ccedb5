// Starting processes with posix_spawn(3) instead of Node's child_process.
//
// Why: libuv starts a child with fork(), which copies the page tables of the
// whole daemon on the event loop thread. On a VM that costs 20-45 ms at the
// daemon's 100-150 MiB RSS, for every runc, conmon, CNI plugin or mount call,
// and nothing else runs meanwhile. glibc's posix_spawn uses
// clone(CLONE_VM|CLONE_VFORK): the child borrows the parent's memory until it
// execs, so starting a process costs well under a millisecond whatever the
// daemon's size. The call itself runs on a thread of libuv's pool (the caller
// waits there until the child has exec'd, which on a busy machine takes some
// milliseconds): the pid is known from the 'spawn' event (or `spawned`) on.
//
// What it keeps of child_process: stdio entries 'pipe' (a socketpair end in
// the parent as a net.Socket, as libuv makes them), 'ignore' (/dev/null) and
// 'inherit'; cwd, env, detached (a new session); the events 'exit' and
// 'close' with (code, signal), and 'error' (asynchronously) when the program
// cannot be started. Every signal is at its default and none is blocked in
// the child (Node itself ignores SIGPIPE, which would otherwise be inherited).
// Exits are collected on SIGCHLD with waitpid() for the pids started here
// only, so libuv's own children are left alone.
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import { AF_UNIX, errnoName, libc, SOCK_CLOEXEC, SOCK_STREAM } from './libc.ts';

const c = {
  posix_spawn: libc.func(
    'int posix_spawn(_Out_ int *pid, const char *path, const uint8_t *actions, const uint8_t *attr, const char **argv, const char **envp)',
  ),
  actionsInit: libc.func('int posix_spawn_file_actions_init(_Inout_ uint8_t *actions)'),
  actionsDestroy: libc.func('int posix_spawn_file_actions_destroy(_Inout_ uint8_t *actions)'),
  addDup2: libc.func('int posix_spawn_file_actions_adddup2(_Inout_ uint8_t *actions, int fd, int newfd)'),
  addOpen: libc.func('int posix_spawn_file_actions_addopen(_Inout_ uint8_t *actions, int fd, const char *path, int oflag, uint32_t mode)'),
  addChdir: libc.func('int posix_spawn_file_actions_addchdir_np(_Inout_ uint8_t *actions, const char *path)'),
  attrInit: libc.func('int posix_spawnattr_init(_Inout_ uint8_t *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(_Inout_ uint8_t *attr)'),
  attrSetFlags: libc.func('int posix_spawnattr_setflags(_Inout_ uint8_t *attr, short flags)'),
  attrSetSigDefault: libc.func('int posix_spawnattr_setsigdefault(_Inout_ uint8_t *attr, const uint8_t *set)'),
  attrSetSigMask: libc.func('int posix_spawnattr_setsigmask(_Inout_ uint8_t *attr, const uint8_t *set)'),
  sigemptyset: libc.func('int sigemptyset(_Inout_ uint8_t *set)'),
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *fds)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  close: libc.func('int close(int fd)'),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
};

const O_RDWR = 2;
const F_DUPFD_CLOEXEC = 1030;
const WNOHANG = 1;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
// glibc's opaque types on 64-bit Linux are 80, 336 and 128 bytes; room to spare.
const ACTIONS_SIZE = 256;
const ATTR_SIZE = 1024;
const SIGSET_SIZE = 128;

const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export type StdioEntry = 'pipe' | 'ignore' | 'inherit';

export interface SpawnOptions {
  cwd?: string;
  /** The child's whole environment (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  /** What the child's fds 0, 1, 2, 3... are (default: three pipes). */
  stdio?: StdioEntry[];
  /** Run the child in a new session (its own process group), like child_process's detached. */
  detached?: boolean;
}

/** A started process: stdio as net.Sockets (null where not piped), 'exit' and 'close' events with (code, signal). */
export class Child extends EventEmitter {
  /** Set once the process exists (the 'spawn' event). */
  pid: number | undefined;
  readonly stdio: Array<Socket | null>;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Resolves with the pid once the process exists, or with undefined when it could not start. */
  readonly spawned: Promise<number | undefined>;
  private resolveSpawned!: (pid: number | undefined) => void;
  private exited = false;
  private openStreams = 0;
  /** Signals asked for before the pid was known: [signal, whole process group]. */
  private pendingKills: Array<[NodeJS.Signals | number, boolean]> = [];

  constructor(stdio: Array<Socket | null>) {
    super();
    this.stdio = stdio;
    this.spawned = new Promise((resolve) => (this.resolveSpawned = resolve));
    for (const s of stdio) {
      if (!s) continue;
      this.openStreams++;
      s.once('close', () => {
        this.openStreams--;
        this.maybeClose();
      });
    }
  }

  get stdin(): Socket | null {
    return this.stdio[0] ?? null;
  }

  get stdout(): Socket | null {
    return this.stdio[1] ?? null;
  }

  get stderr(): Socket | null {
    return this.stdio[2] ?? null;
  }

  /** Sends a signal (once the process exists, if it does not yet); false when it has already been collected. */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.signal(signal, false);
  }

  /** Sends a signal to the child's process group (a detached child leads its own). */
  killGroup(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.signal(signal, true);
  }

  private signal(signal: NodeJS.Signals | number, group: boolean): boolean {
    if (this.exited) return false;
    if (!this.pid) {
      this.pendingKills.push([signal, group]);
      return true;
    }
    try {
      process.kill(group ? -this.pid : this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** @internal The process exists. */
  started(pid: number): void {
    this.pid = pid;
    this.resolveSpawned(pid);
    this.emit('spawn');
    for (const [signal, group] of this.pendingKills.splice(0)) this.signal(signal, group);
  }

  /** @internal The process could not be started. */
  failed(err: Error): void {
    this.resolveSpawned(undefined);
    this.emit('error', err);
  }

  /** @internal Whether the event loop waits for this child's exit. */
  keepsAlive = true;

  /** The event loop no longer waits for this child's exit (its stdio streams still count). */
  unref(): void {
    this.keepsAlive = false;
    updateRef();
  }

  /** @internal */
  settle(code: number | null, signal: NodeJS.Signals | null): void {
    this.exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
    // Output nobody reads would keep its stream, and so 'close', open forever: drain it.
    for (const s of this.stdio) if (s && s.readableFlowing === null) s.resume();
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.exited && this.openStreams === 0) this.emit('close', this.exitCode, this.signalCode);
  }
}

/** The error of a program that could not be started, shaped like child_process's (code 'ENOENT', syscall, path). */
export class SpawnError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string;
  readonly spawnargs: string[];
  constructor(file: string, args: string[], errno: number) {
    const code = errnoName(errno);
    super(`spawn ${file} ${code}`);
    this.code = code;
    this.errno = -errno;
    this.syscall = `spawn ${file}`;
    this.path = file;
    this.spawnargs = args;
  }
}

const live = new Map<number, Child>();
let reaping = false;
/**
 * While a child runs the event loop must not end (its exit is still to be
 * collected), as with child_process; the same timer collects any exit whose
 * SIGCHLD was merged with another.
 */
let keepAlive: NodeJS.Timeout | undefined;
const KEEPALIVE_MS = 1000;

function track(child: Child): void {
  live.set(child.pid!, child);
  keepAlive ??= setInterval(reap, KEEPALIVE_MS);
  updateRef();
}

function updateRef(): void {
  if (!keepAlive) return;
  if (!live.size) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  } else if ([...live.values()].some((c) => c.keepsAlive)) keepAlive.ref();
  else keepAlive.unref();
}

function reap(): void {
  const status = [0];
  for (const [pid, child] of live) {
    const r = c.waitpid(pid, status, WNOHANG) as number;
    if (r === 0) continue;
    live.delete(pid);
    if (r < 0) {
      // Collected by someone else (ECHILD): the status is lost.
      child.settle(null, null);
      continue;
    }
    const s = status[0]!;
    const termsig = s & 0x7f;
    if (termsig === 0) child.settle((s >> 8) & 0xff, null);
    else child.settle(null, SIGNAL_NAMES.get(termsig) ?? null);
  }
  updateRef();
}

function resolveProgram(file: string, env: NodeJS.ProcessEnv): string | undefined {
  if (file.includes('/')) return file;
  for (const dir of (env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = `${dir || '.'}/${file}`;
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** An fd number above the child's stdio range, so one dup2 never overwrites another's source. */
function above(fd: number, count: number): number {
  if (fd >= count) return fd;
  const moved = c.fcntl(fd, F_DUPFD_CLOEXEC, 'int', count) as number;
  c.close(fd);
  if (moved < 0) throw new Error(`fcntl(F_DUPFD_CLOEXEC) failed: errno ${koffi.errno()}`);
  return moved;
}

/** Starts file with args (argv[0] is file). Failure to start is an 'error' event, as with child_process.spawn. */
export function spawnChild(file: string, args: string[], options: SpawnOptions = {}): Child {
  const env = options.env ?? process.env;
  // C strings end at NUL: such an argument would reach the program cut short (child_process refuses them too).
  for (const value of [file, ...args, options.cwd ?? '', ...Object.entries(env).flatMap(([k, v]) => [k, v ?? ''])]) {
    if (value.includes('\0')) throw new TypeError(`spawn ${file}: arguments, environment and cwd must not contain NUL bytes`);
  }
  const stdio = options.stdio ?? ['pipe', 'pipe', 'pipe'];
  if (!reaping) {
    process.on('SIGCHLD', reap);
    reaping = true;
  }
  const childEnds: number[] = [];
  const parentEnds: Array<number | null> = [];
  const actions = Buffer.alloc(ACTIONS_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  c.actionsInit(actions);
  c.attrInit(attr);
  let errno = 0;
  const pid = new Int32Array(1);
  let argv: Array<string | null> = [];
  let envp: Array<string | null> = [];
  let program: string | undefined;
  try {
    for (let i = 0; i < stdio.length; i++) {
      const entry = stdio[i]!;
      if (entry === 'pipe') {
        const fds = [0, 0];
        if ((c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) as number) !== 0) throw new Error(`socketpair failed: errno ${koffi.errno()}`);
        parentEnds.push(fds[0]!);
        const end = above(fds[1]!, stdio.length);
        childEnds.push(end);
        c.addDup2(actions, end, i);
      } else {
        parentEnds.push(null);
        if (entry === 'ignore') c.addOpen(actions, i, '/dev/null', O_RDWR, 0);
        // 'inherit': fds 0-2 are the daemon's own and not close-on-exec.
      }
    }
    if (options.cwd) c.addChdir(actions, options.cwd);
    // Every signal 1-64 back to its default. Set as bits: sigfillset leaves out glibc's two
    // internal signals, which posix_spawn would then leave ignored across exec.
    const all = Buffer.alloc(SIGSET_SIZE);
    all.fill(0xff, 0, 8);
    const none = Buffer.alloc(SIGSET_SIZE);
    c.sigemptyset(none);
    c.attrSetSigDefault(attr, all);
    c.attrSetSigMask(attr, none);
    c.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (options.detached ? POSIX_SPAWN_SETSID : 0));
    program = resolveProgram(file, env);
    if (!program) errno = osConstants.errno.ENOENT;
    argv = [file, ...args, null];
    envp = [
      ...Object.entries(env)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`),
      null,
    ];
  } catch (err) {
    for (const fd of [...childEnds, ...parentEnds]) if (fd !== null) c.close(fd);
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
    throw err;
  }
  // Pipes exist even when the program did not start (they read as closed), as with child_process.
  const child = new Child(parentEnds.map((fd) => (fd === null ? null : new Socket({ fd, readable: true, writable: true }))));
  // Writes to a child that has gone fail with EPIPE; that is the exit's business, not an uncaught error.
  child.stdin?.on('error', () => undefined);
  const finish = (err: unknown, rc: number) => {
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
    for (const fd of childEnds) c.close(fd);
    if (err || rc !== 0) {
      child.failed(err instanceof Error ? err : new SpawnError(file, args, rc || errno));
      return;
    }
    child.started(pid[0]!);
    track(child);
    // Its SIGCHLD may have come and gone before the pid was known.
    reap();
  };
  if (!program) process.nextTick(() => finish(undefined, errno));
  else c.posix_spawn.async(pid, program, actions, attr, argv, envp, finish);
  return child;
}

/** A child whose stdin, stdout and stderr are pipes. */
export interface PipedChild extends Child {
  readonly stdin: Socket;
  readonly stdout: Socket;
  readonly stderr: Socket;
}

/** spawnChild with stdio ['pipe', 'pipe', 'pipe', ...extra]. */
export function spawnPiped(file: string, args: string[], options: Omit<SpawnOptions, 'stdio'> & { extra?: StdioEntry[] } = {}): PipedChild {
  return spawnChild(file, args, { ...options, stdio: ['pipe', 'pipe', 'pipe', ...(options.extra ?? [])] }) as PipedChild;
}

export interface RunOptions extends Omit<SpawnOptions, 'stdio'> {
  /** Written to the child's stdin, which is then closed (stdin is /dev/null without it). */
  input?: string | Buffer;
  /** Kill the child after this long (0 = never). */
  timeoutMs?: number;
  killSignal?: NodeJS.Signals;
  /** Bytes of stdout and of stderr kept; a child writing more is killed. */
  maxBuffer?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** The exit code, or null when a signal ended the child. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** Runs a program to its end and collects its output. Rejects only when it cannot start or writes more than maxBuffer. */
export function run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const maxBuffer = options.maxBuffer ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawnChild(file, args, { ...options, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    let overflow = false;
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill(options.killSignal ?? 'SIGTERM');
        }, options.timeoutMs)
      : undefined;
    const collect = (chunks: Buffer[], size: () => number, add: (n: number) => void) => (d: Buffer) => {
      if (size() + d.length > maxBuffer) {
        if (!overflow) child.kill('SIGKILL');
        overflow = true;
        return;
      }
      add(d.length);
      chunks.push(d);
    };
    child.stdout?.on(
      'data',
      collect(
        out,
        () => outBytes,
        (n) => (outBytes += n),
      ),
    );
    child.stderr?.on(
      'data',
      collect(
        err,
        () => errBytes,
        (n) => (errBytes += n),
      ),
    );
    child.once('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (timer) clearTimeout(timer);
      if (overflow) return reject(new RangeError(`${file} wrote more than ${maxBuffer} bytes of output`));
      resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code, signal, timedOut });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
