// ExecSync: runs a command in a running container and collects its output.
//
// Why `runc exec` in the foreground rather than conmon --exec (CRI-O's way):
// the command's stdout and stderr arrive on two pipes we own, so they stay
// separate and are capped as they stream in (16 MiB each, kubelet's limit)
// without a log file to parse afterwards; and runc runs in a process group
// of its own that the exec'd process inherits, so a timeout kills the whole
// group at once. Nothing has to outlive tscri for a synchronous call.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { writeFileAtomic } from '../store/store.ts';
import { deadlineExceeded } from '../server/errors.ts';
import type { OciRuntime } from './runtime.ts';
import { readPidFile } from './conmon.ts';

/** kubelet reads at most this much of each stream. */
export const EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024;

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

/** Collects a stream's bytes up to a limit and drops the rest (the stream is still drained). */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  readonly limit: number;
  truncated = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.truncated = this.truncated || chunk.length > 0;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  value(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export async function execSync(
  runtime: OciRuntime,
  id: string,
  bundle: string,
  processSpec: Record<string, any>,
  timeoutSeconds: number,
  signal?: AbortSignal,
): Promise<ExecSyncResult> {
  const tag = randomBytes(6).toString('hex');
  const processFile = join(bundle, `exec-${tag}.json`);
  const pidFile = join(bundle, `exec-${tag}.pid`);
  await writeFileAtomic(processFile, JSON.stringify(processSpec));
  const stdout = new CappedBuffer(EXEC_OUTPUT_LIMIT);
  const stderr = new CappedBuffer(EXEC_OUTPUT_LIMIT);
  const child = runtime.spawnExec(id, processFile, pidFile);
  const closed = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, sig) => resolve(exitCode ?? 128 + signalNumber(sig)));
  });
  closed.catch(() => undefined);
  child.stdin.end();
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));

  let why: 'timeout' | 'aborted' | undefined;
  // The command is killed before runc, so that runc (its parent) reaps it:
  // killed together, the command would be orphaned and linger as a zombie
  // that the next exec sees (kubelet and critest look for it). runc itself
  // is killed only if it does not end by itself soon after.
  const killAll = async () => {
    const pid = await readPidFile(pidFile);
    for (const member of [...groupMembers(child.pid!), ...(pid ? [pid] : [])]) {
      if (member !== child.pid) kill(member);
    }
    const ended = await Promise.race([closed.then(() => true, () => true), delay(RUNC_GRACE_MS).then(() => false)]);
    if (!ended) kill(-child.pid!);
  };
  const timer = timeoutSeconds > 0 ? setTimeout(() => ((why = 'timeout'), void killAll()), timeoutSeconds * 1000) : undefined;
  const onAbort = () => ((why ??= 'aborted'), void killAll());
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const code = await closed;
    if (why === 'timeout') throw deadlineExceeded(`command ${JSON.stringify(processSpec.args)} timed out after ${timeoutSeconds}s and was killed`);
    if (why === 'aborted') throw signal!.reason ?? new Error('the call was cancelled');
    return { stdout: stdout.value(), stderr: stderr.value(), exitCode: code };
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  }
}

/** How long runc gets to reap its killed command and exit before it is killed too. */
const RUNC_GRACE_MS = 2000;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Processes of a process group, from /proc (the group runc leads and the command joins). */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(name));
    } catch {
      // the process ended meanwhile
    }
  }
  return members;
}

function signalNumber(sig: NodeJS.Signals | null): number {
  if (!sig) return 0;
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}
