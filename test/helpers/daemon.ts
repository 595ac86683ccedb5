// Starts a real tscri daemon for a test on its own socket, root and state
// directories, and stops it (SIGTERM) and removes its directories afterwards.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';
import { criClient, type CriCall } from './cri-client.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
/** The V8 flags bin/tscri runs the daemon with. */
export const NODE_FLAGS = ['--max-semi-space-size=2'];
/** The environment bin/tscri adds: where Node keeps the JavaScript stripped from tscri's TypeScript, and two malloc arenas. */
export const NODE_ENV = { NODE_COMPILE_CACHE: fileURLToPath(new URL('../../.cache/node-compile-cache', import.meta.url)), MALLOC_ARENA_MAX: '2' };

export interface TestDaemon {
  dir: string;
  socket: string;
  root: string;
  state: string;
  call: CriCall;
  /** Everything the daemon printed so far (its JSON log). */
  output(): string;
  process: ChildProcess;
  /** SIGTERM, wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, wait for exit. */
  kill(): Promise<void>;
  /** Stops the daemon and removes its directories (those it made) and the cgroup parent it chose. */
  cleanup(): Promise<void>;
  /**
   * Stops the daemon (if it still runs) and starts a new one on the same
   * directories and options, changed by `changes`; the new one's cleanup()
   * removes what this one's would have.
   */
  restart(changes?: Partial<DaemonOptions>): Promise<TestDaemon>;
}

export interface DaemonOptions {
  /** TOML text for the config file. */
  config?: string;
  extraArgs?: string[];
  /** Reuse directories of an earlier daemon (restart tests; TestDaemon.restart does it). */
  dir?: string;
  /** cleanup() removes the directory: by default only one startDaemon made. */
  removeDir?: boolean;
  /** How long to wait for the daemon to serve; slow machines (an emulated VM) need more. */
  startTimeoutMs?: number;
  /** Extra environment variables (NOTIFY_SOCKET, LISTEN_FDS...). */
  env?: Record<string, string>;
  /**
   * A descriptor handed to the daemon as its fd 3, with LISTEN_PID set to the
   * daemon's own pid, as systemd's socket activation does.
   */
  listenFd?: number;
  /** Where the daemon serves when that is not its --listen socket (a socket handed in). */
  socket?: string;
}

export async function startDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'tscri-test-')));
  const removeDir = options.removeDir ?? !options.dir;
  const listen = join(dir, 'tscri.sock');
  const socket = options.socket ?? listen;
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const configFile = join(dir, 'tscri.toml');
  // Pods of a test daemon never go under the default /tscri cgroup, which would outlive the test:
  // a config without a parent gets one named after the directory (so a restart on it finds the same).
  const ownParent = /^\s*default_cgroup_parent\s*=/m.test(options.config ?? '')
    ? undefined
    : `/tscri-test-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`;
  await writeFile(configFile, ownParent ? `default_cgroup_parent = "${ownParent}"\n${options.config ?? ''}` : (options.config ?? ''));
  const args = [
    ...NODE_FLAGS,
    CLI,
    'serve',
    '--config',
    configFile,
    '--listen',
    `unix://${listen}`,
    '--root',
    root,
    '--state',
    state,
    '--log-level',
    'debug',
    ...(options.extraArgs ?? []),
  ];
  const env = { ...process.env, ...NODE_ENV, ...options.env };
  // LISTEN_PID must be the daemon's pid: a shell sets it to its own, then execs the daemon.
  const child =
    options.listenFd === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'pipe', options.listenFd],
          env: { LISTEN_FDS: '1', ...env },
        });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitForSocket(socket, child, () => output, options.startTimeoutMs ?? 20_000);
  const client = criClient(socket);
  const daemon: TestDaemon = {
    dir,
    socket,
    root,
    state,
    call: client.call,
    output: () => output,
    process: child,
    async stop() {
      client.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      client.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async cleanup() {
      // A test that failed midway leaves pods: torn down (CNI DEL, processes, mounts) before the daemon stops.
      if (child.exitCode === null && child.signalCode === null) await removePods(client.call).catch(() => undefined);
      await daemon.stop();
      if (ownParent) await removeCgroup(ownParent);
      if (removeDir) await rm(dir, { recursive: true, force: true });
    },
    async restart(changes = {}) {
      await daemon.stop();
      return startDaemon({ ...options, ...changes, dir, removeDir });
    },
  };
  return daemon;
}

async function removePods(call: CriCall): Promise<void> {
  for (const pod of (await call('ListPodSandbox', {})).items) {
    await call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
    await call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
  }
}

async function waitForSocket(socket: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    // A daemon killed by a signal (V8 aborting, say) has a signalCode and no exitCode.
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`tscri exited with ${child.exitCode ?? child.signalCode}:\n${output()}`);
    if (
      await stat(socket).then(
        (s) => s.isSocket(),
        () => false,
      )
    ) {
      if (output().includes('tscri is serving')) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const where = stuckAt(child.pid!);
  child.kill('SIGKILL');
  throw new Error(`tscri did not start serving on ${socket} within ${timeoutMs / 1000} s:\n${output()}\n${where}`);
}

/** Where a process that does not progress waits: its threads' states and kernel wait channels, and its children. */
function stuckAt(pid: number): string {
  const lines: string[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const read = (f: string) => {
        try {
          return readFileSync(`/proc/${pid}/task/${task}/${f}`, 'utf8').trim();
        } catch {
          return '?';
        }
      };
      const state = /^State:\s*(.*)$/m.exec(read('status'))?.[1] ?? '?';
      lines.push(`thread ${task} ${read('comm')}: ${state}, waiting in ${read('wchan')}`);
    }
    const children = execFileSync('ps', ['--ppid', String(pid), '-o', 'pid,stat,wchan:32,args'], { encoding: 'utf8' });
    lines.push(`children:\n${children}`);
  } catch (err) {
    lines.push(`(could not inspect process ${pid}: ${(err as Error).message})`);
  }
  return lines.join('\n');
}
