// ExecSync: runs a command in a running container and collects its output.
//
// Why `runc exec` in the foreground rather than conmon --exec (CRI-O's way):
// the command's stdout and stderr arrive on two pipes we own, so they stay
// separate and are capped as they stream in (16 MiB each, kubelet's limit)
// without a log file to parse afterwards; and a timeout can find and kill
// everything the command started (its descendants, its session and process
// group, which runc's setsid gives it) before it answers. Nothing has to
// outlive tscri for a synchronous call.
import type { Process } from '../oci/types.ts';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { deadlineExceeded, quote } from '../errors.ts';
import type { OciRuntime } from './runtime.ts';

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
  processSpec: Process,
  timeoutSeconds: number,
  signal?: AbortSignal,
): Promise<ExecSyncResult> {
  const tag = randomBytes(6).toString('hex');
  const processFile = join(bundle, `exec-${tag}.json`);
  // A name of this call only, read once by runc: no temporary file and rename,
  // no sync. No pid file either (runc writes it with O_SYNC): the command is
  // runc's child (runc starts it with CLONE_PARENT), found in /proc on a timeout.
  await writeFile(processFile, JSON.stringify(processSpec), { mode: 0o600, flag: 'wx' });
  const stdout = new CappedBuffer(EXEC_OUTPUT_LIMIT);
  const stderr = new CappedBuffer(EXEC_OUTPUT_LIMIT);
  const child = runtime.spawnExec(id, processFile);
  const closed = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, sig) => resolve(exitCode ?? 128 + signalNumber(sig)));
  });
  closed.catch(() => undefined);
  child.stdin.end();
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));

  let why: 'timeout' | 'aborted' | undefined;
  const ended = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  // Everything the command started is killed, children first, then the
  // command, so that runc (the command's parent) reaps it: killed together,
  // the command would be orphaned and linger as a zombie that the next exec
  // sees (kubelet and critest look for it). Children found only through the
  // command's session or process group (orphans re-parented inside the
  // container) are killed too, and the scan repeats until nothing of the
  // command is left. runc is killed only if it does not end soon after.
  const killAll = async () => {
    if (!(await child.spawned)) return;
    for (const command of childrenOf(child.pid!)) await killTree(command);
    for (const member of groupMembers(child.pid!)) if (member !== child.pid) kill(member);
    const done = await Promise.race([ended.then(() => true), delay(RUNC_GRACE_MS).then(() => false)]);
    if (!done) kill(-child.pid!);
    // A process that escaped the scan may still hold the output pipes: stop reading them.
    await Promise.race([
      closed.then(
        () => undefined,
        () => undefined,
      ),
      delay(STDIO_GRACE_MS),
    ]);
    child.stdout.destroy();
    child.stderr.destroy();
    forceClose();
  };
  let forceClose: () => void = () => undefined;
  const finished = new Promise<number>((resolve, reject) => {
    closed.then(resolve, reject);
    forceClose = () => resolve(child.exitCode ?? 128 + signalNumber(child.signalCode));
  });
  const timer = timeoutSeconds > 0 ? setTimeout(() => ((why = 'timeout'), void killAll()), timeoutSeconds * 1000) : undefined;
  const onAbort = () => ((why ??= 'aborted'), void killAll());
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const code = await finished;
    if (why === 'timeout') throw deadlineExceeded(`command ${quote(processSpec.args)} timed out after ${timeoutSeconds}s and was killed`);
    if (why === 'aborted') throw signal!.reason ?? new Error('the call was cancelled');
    return { stdout: stdout.value(), stderr: stderr.value(), exitCode: code };
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    await rm(processFile, { force: true });
  }
}

/** How long runc gets to reap its killed command and exit before it is killed too. */
const RUNC_GRACE_MS = 500;
/** How long the output pipes may stay open after runc ended (a process of the command that escaped). */
const STDIO_GRACE_MS = 200;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

interface ProcEntry {
  pid: number;
  /** The state letter: R, S, D, Z (zombie)... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

/** Every process's state, parent, process group and session, from /proc. */
export function processTable(proc = '/proc'): ProcEntry[] {
  const table: ProcEntry[] = [];
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`${proc}/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp session ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.push({ pid: Number(name), state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return table;
}

/**
 * The processes a command started: pid, its descendants, and everything in
 * the sessions and process groups led by one of those (where children
 * re-parented to the container's init stay), with their descendants.
 * sessions and groups collect those leaders' ids across scans. Deepest
 * first, pid last, so parents outlive their children and can reap them.
 */
export function commandProcesses(pid: number, table: ProcEntry[], sessions = new Set<number>(), groups = new Set<number>()): number[] {
  const children = new Map<number, ProcEntry[]>();
  for (const p of table) {
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  const depth = new Map<number, number>();
  const visit = (p: ProcEntry, d: number) => {
    if (depth.has(p.pid) || p.pid <= 1) return;
    depth.set(p.pid, d);
    if (p.session === p.pid) sessions.add(p.pid);
    if (p.pgrp === p.pid) groups.add(p.pid);
    for (const c of children.get(p.pid) ?? []) visit(c, d + 1);
  };
  const me = table.find((p) => p.pid === pid);
  if (me) visit(me, 0);
  // Leaders found late add members; a few passes reach the fixed point.
  for (let pass = 0; pass < 4; pass++) {
    const before = depth.size;
    for (const p of table) if (sessions.has(p.session) || groups.has(p.pgrp)) visit(p, 1);
    if (depth.size === before) break;
  }
  return [...depth]
    .filter(([p]) => p !== pid)
    .sort((a, b) => b[1] - a[1])
    .map(([p]) => p)
    .concat(depth.has(pid) ? [pid] : []);
}

/** SIGKILLs pid and everything it started, rescanning until none is left alive (forks race the scan). */
export async function killTree(pid: number, proc = '/proc'): Promise<void> {
  const sessions = new Set<number>();
  const groups = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const table = processTable(proc);
    const state = new Map(table.map((p) => [p.pid, p.state]));
    const alive = commandProcesses(pid, table, sessions, groups).filter((p) => state.get(p) !== 'Z' && state.get(p) !== 'X');
    if (!alive.length) return;
    for (const p of alive) kill(p);
    await delay(5);
  }
}

/** The processes whose parent is pid (runc's: the command, or runc init before it becomes the command). */
export function childrenOf(pid: number): number[] {
  return processTable()
    .filter((p) => p.ppid === pid)
    .map((p) => p.pid);
}

/** Processes of a process group, from /proc (the group runc leads). */
export function groupMembers(pgid: number): number[] {
  return processTable()
    .filter((p) => p.pgrp === pgid)
    .map((p) => p.pid);
}

function signalNumber(sig: NodeJS.Signals | null): number {
  if (!sig) return 0;
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}
