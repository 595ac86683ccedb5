// ExecSync: runs a command in a running container and collects its output.
//
// Why `runc exec` in the foreground rather than conmon --exec (CRI-O's way):
// the command's stdout and stderr arrive on two pipes we own, so they stay
// separate and are capped as they stream in (16 MiB each, kubelet's limit)
// without a log file to parse afterwards; and runc runs in a process group
// of its own that the exec'd process inherits, so a timeout kills the whole
// group at once. Nothing has to outlive tscri for a synchronous call.
import { randomBytes } from 'node:crypto';
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
  child.stdin.end();
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));

  let why: 'timeout' | 'aborted' | undefined;
  const killAll = async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is already gone
    }
    // A process that left runc's group is still named in the pid file.
    const pid = await readPidFile(pidFile);
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const timer = timeoutSeconds > 0 ? setTimeout(() => ((why = 'timeout'), void killAll()), timeoutSeconds * 1000) : undefined;
  const onAbort = () => ((why ??= 'aborted'), void killAll());
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode, sig) => resolve(exitCode ?? 128 + signalNumber(sig)));
    });
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

function signalNumber(sig: NodeJS.Signals | null): number {
  if (!sig) return 0;
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}
