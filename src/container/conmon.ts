// Starting conmon, the per-container monitor: it runs `runc create` (or
// `runc exec --detach` for an exec session), holds the process's stdio,
// writes the CRI log file, serves the attach socket and the `ctl` fifo, and
// writes the exit code to <exit dir>/<id> and <persist dir>/exit when the
// process ends. conmon forks twice and outlives tscri, so containers keep
// running across a daemon restart.
//
// conmon reports back on a "sync pipe" (fd 3, named by _OCI_SYNCPIPE): one
// JSON line per event, `{"data": N}` or `{"data": N, "message": "..."}`.
// For a container N is its pid (negative on failure); for an exec session
// the first line is the pid and the second the exit code.
import { spawnChild, type Child } from '../sys/spawn.ts';
import { constants as fsConstants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition } from '../errors.ts';
import type { Readable, Writable } from 'node:stream';

export interface ConmonCommon {
  conmonPath: string;
  runtimePath: string;
  /** Global runtime arguments (`--root DIR`), passed through as --runtime-arg. */
  runtimeArgs: string[];
  /** The container id (the runtime's name for it). */
  id: string;
  /** Directory where conmon creates the attach socket's short symlink. */
  socketDir: string;
  terminal: boolean;
  stdin: boolean;
  logLevel?: string;
}

export interface ConmonCreateOptions extends ConmonCommon {
  name: string;
  bundle: string;
  exitDir: string;
  /** Absolute path of the CRI log file; empty for no log. */
  logPath: string;
  /** Close the container's stdin when the first attached client detaches. */
  stdinOnce: boolean;
  systemdCgroup: boolean;
  /** A CRIU image directory: conmon runs `runc restore` from it instead of `runc create`. */
  restorePath?: string;
}

export interface ConmonExecOptions extends ConmonCommon {
  /** The exec session's own directory: process spec, pid file, attach socket, fifos. */
  sessionDir: string;
  /** A short unique id of the session, used for the attach socket symlink. */
  sessionId: string;
  processSpec: string;
}

/** The conmon pid file, the container pid file and the exit file of a bundle. */
export function bundleFiles(bundle: string) {
  return {
    conmonPid: join(bundle, 'conmon.pid'),
    containerPid: join(bundle, 'pidfile'),
    exit: join(bundle, 'exit'),
    oom: join(bundle, 'oom'),
    ctl: join(bundle, 'ctl'),
    config: join(bundle, 'config.json'),
  };
}

function commonArgs(o: ConmonCommon): string[] {
  const args = ['--api-version', '--cid', o.id, '--runtime', o.runtimePath, '--socket-dir-path', o.socketDir];
  for (const arg of o.runtimeArgs) args.push(`--runtime-arg=${arg}`);
  if (o.terminal) args.push('--terminal');
  if (o.stdin) args.push('--stdin');
  if (o.logLevel) args.push('--log-level', conmonLogLevel(o.logLevel));
  return args;
}

/** conmon's arguments for creating a container. */
export function conmonCreateArgs(o: ConmonCreateOptions): string[] {
  const files = bundleFiles(o.bundle);
  const args = [
    ...commonArgs(o),
    '--cuuid',
    o.id,
    '--name',
    o.name,
    '--bundle',
    o.bundle,
    '--container-pidfile',
    files.containerPid,
    '--conmon-pidfile',
    files.conmonPid,
    '--persist-dir',
    o.bundle,
    '--exit-dir',
    o.exitDir,
    '--log-path',
    o.logPath ? `k8s-file:${o.logPath}` : 'none',
  ];
  if (o.stdin && !o.stdinOnce) args.push('--leave-stdin-open');
  if (o.systemdCgroup) args.push('--systemd-cgroup');
  if (o.restorePath) args.push('--restore', o.restorePath);
  return args;
}

/**
 * conmon's arguments for an exec session whose stdio is reached through the
 * session's attach socket. No --exit-dir: conmon names exit files after the
 * container id, and an exec ending must not read as the container ending.
 */
export function conmonExecArgs(o: ConmonExecOptions): string[] {
  return [
    ...commonArgs(o),
    '--cuuid',
    o.sessionId,
    '--name',
    o.sessionId,
    '--exec',
    '--exec-attach',
    '--exec-process-spec',
    o.processSpec,
    '--bundle',
    o.sessionDir,
    '--container-pidfile',
    join(o.sessionDir, 'pidfile'),
    '--conmon-pidfile',
    join(o.sessionDir, 'conmon.pid'),
    '--persist-dir',
    o.sessionDir,
    '--log-path',
    'none',
  ];
}

function conmonLogLevel(level: string): string {
  if (level === 'trace' || level === 'debug') return 'debug';
  if (level === 'warn' || level === 'error' || level === 'fatal') return 'error';
  return 'info';
}

export interface SyncMessage {
  data: number;
  message?: string;
}

/** Splits sync pipe output into JSON messages; returns the parsed ones and the unfinished rest. */
export function parseSyncMessages(buffer: string): { messages: SyncMessage[]; rest: string } {
  const messages: SyncMessage[] = [];
  let rest = buffer;
  let newline: number;
  while ((newline = rest.indexOf('\n')) >= 0) {
    const line = rest.slice(0, newline).trim();
    rest = rest.slice(newline + 1);
    if (!line) continue;
    const parsed = JSON.parse(line) as Record<string, unknown>;
    const data = Number(parsed.data ?? parsed.pid ?? parsed.exit_code);
    messages.push(typeof parsed.message === 'string' ? { data, message: parsed.message } : { data });
  }
  return { messages, rest };
}

/** Reads sync messages from a stream one at a time. */
export class SyncReader {
  private buffer = '';
  private readonly queue: SyncMessage[] = [];
  private waiters: Array<{ resolve: (m: SyncMessage) => void; reject: (e: Error) => void }> = [];
  private ended: Error | undefined;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      try {
        const { messages, rest } = parseSyncMessages(this.buffer + chunk);
        this.buffer = rest;
        for (const m of messages) this.push(m);
      } catch (err) {
        this.fail(new Error(`conmon sent an unreadable message: ${(err as Error).message}`));
      }
    });
    stream.on('end', () => this.fail(new Error('conmon closed its sync pipe without answering')));
    stream.on('error', (err) => this.fail(err));
  }

  private push(m: SyncMessage): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(m);
    else this.queue.push(m);
  }

  fail(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  next(): Promise<SyncMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

export interface SpawnedConmon {
  child: Child;
  sync: SyncReader;
  /** Present for exec sessions: conmon's attach pipe (ready when the socket listens). */
  attach?: SyncReader;
  /** Present for exec sessions: writing a byte lets the process start. */
  start?: Writable;
  /** Everything conmon printed before it detached from its stdio. */
  output(): string;
  /** Resolves with the exit code of the first conmon process (0 once it has forked). */
  exited: Promise<number | null>;
}

/** Starts conmon with the sync pipe on fd 3 (and for exec sessions attach/start pipes on 4 and 5). */
export function spawnConmon(conmonPath: string, args: string[], cwd: string, execSession: boolean): SpawnedConmon {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    _OCI_SYNCPIPE: '3',
  };
  const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'pipe', 'pipe', 'pipe'];
  if (execSession) {
    env._OCI_ATTACHPIPE = '4';
    env._OCI_STARTPIPE = '5';
    stdio.push('pipe', 'pipe');
  }
  const child = spawnChild(conmonPath, args, { cwd, env, stdio });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      output += err.message;
      resolve(null);
    });
  });
  const sync = new SyncReader(child.stdio[3] as Readable);
  const spawned: SpawnedConmon = { child, sync, output: () => output.trim(), exited };
  if (execSession) {
    spawned.attach = new SyncReader(child.stdio[4] as Readable);
    spawned.start = (child.stdio as unknown as Array<Writable>)[5];
  }
  return spawned;
}

/** Waits for the first sync message; fails with conmon's own words if it exits first. */
export async function firstSyncMessage(spawned: SpawnedConmon, reader: SyncReader, timeoutMs: number): Promise<SyncMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`conmon gave no answer within ${timeoutMs / 1000}s`)), timeoutMs);
  });
  // When the first conmon process fails it exits non-zero and closes the pipe.
  const failed = spawned.exited.then(async (code) => {
    if (code === 0) return new Promise<never>(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    throw new Error(`conmon exited with code ${code}: ${spawned.output() || 'no output'}`);
  });
  try {
    return await Promise.race([reader.next(), timeout, failed]);
  } finally {
    clearTimeout(timer);
  }
}

export async function readPidFile(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** conmon's control fifo messages: "<type> <height> <width>\n". */
export const CTL_RESIZE = 1;
export const CTL_REOPEN_LOG = 2;

export function ctlMessage(type: number, height = 0, width = 0): string {
  const clamp = (n: number) => Math.max(0, Math.min(1000, Math.floor(n)));
  return `${type} ${clamp(height)} ${clamp(width)}\n`;
}

/** Writes one message to conmon's control fifo; fails clearly when conmon is gone. */
export async function writeCtl(bundle: string, message: string): Promise<void> {
  let handle;
  try {
    handle = await open(bundleFiles(bundle).ctl, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw failedPrecondition(`the container's monitor (conmon) is not running: ${(err as Error).message}`);
  }
  try {
    await handle.write(message);
  } finally {
    await handle.close();
  }
}
