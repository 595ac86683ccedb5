// The OCI runtime driver: runs runc (or a compatible runtime) for one runtime
// handler with its own --root, and turns its answers and failures into
// plain values and readable errors. Container creation goes through conmon
// (src/container/conmon.ts); everything else is a direct runtime call.
import { run, spawnChild, spawnPiped } from '../sys/spawn.ts';
import { metrics } from '../metrics.ts';

export interface RuntimeState {
  id: string;
  /** created, running, stopped or paused. */
  status: string;
  pid: number;
  bundle: string;
}

export class RuntimeError extends Error {
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(message: string, stderr: string, exitCode: number | null) {
    super(message);
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** One runtime handler: a binary and the directory where it keeps container state. */
export class OciRuntime {
  readonly path: string;
  readonly root: string;
  readonly systemdCgroup: boolean;

  constructor(path: string, root: string, systemdCgroup = false) {
    this.path = path;
    this.root = root;
    this.systemdCgroup = systemdCgroup;
  }

  /** The global arguments every invocation carries. */
  globalArgs(): string[] {
    const args = ['--root', this.root];
    if (this.systemdCgroup) args.push('--systemd-cgroup');
    return args;
  }

  run(args: string[], input?: string, timeoutMs = 60_000): Promise<RunResult> {
    return metrics.time(metrics.runtimeDuration, { command: args[0] ?? '' }, () => this.runOnce(args, input, timeoutMs));
  }

  private async runOnce(args: string[], input: string | undefined, timeoutMs: number): Promise<RunResult> {
    const all = [...this.globalArgs(), ...args];
    let r;
    try {
      r = await run(this.path, all, { input, timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      throw new RuntimeError(`${this.path} ${args[0]} failed: ${(err as Error).message}`, '', null);
    }
    if (r.code === 0) return { stdout: r.stdout, stderr: r.stderr };
    const why = r.timedOut ? `timed out after ${timeoutMs / 1000} s` : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
    throw new RuntimeError(`${this.path} ${args[0]} failed: ${runtimeMessage(r.stderr) || why}`, r.stderr, r.code);
  }

  /** The runtime's view of a container, or undefined when it does not know the id. */
  async state(id: string): Promise<RuntimeState | undefined> {
    try {
      const { stdout } = await this.run(['state', id]);
      const state = JSON.parse(stdout) as RuntimeState;
      return state;
    } catch (err) {
      if (err instanceof RuntimeError && isNotExist(err.stderr)) return undefined;
      throw err;
    }
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  /** Sends a signal to the container's init process (all processes with all=true). */
  async kill(id: string, signal: string, all = false): Promise<void> {
    try {
      await this.run(['kill', ...(all ? ['--all'] : []), id, signal]);
    } catch (err) {
      // A container that already stopped or is gone has nothing left to signal.
      if (err instanceof RuntimeError && (isNotExist(err.stderr) || /not running|process already finished|container not running/i.test(err.stderr))) return;
      throw err;
    }
  }

  /** Removes the runtime's state of the container, killing it first if needed. */
  async delete(id: string): Promise<void> {
    try {
      await this.run(['delete', '--force', id]);
    } catch (err) {
      if (err instanceof RuntimeError && isNotExist(err.stderr)) return;
      throw err;
    }
  }

  /** Applies new resource limits (the `runc update --resources` JSON, a LinuxResources object). */
  async update(id: string, resources: object): Promise<void> {
    await this.run(['update', '--resources', '-', id], JSON.stringify(resources));
  }

  /** Freezes every process of the container (the cgroup freezer). */
  async pause(id: string): Promise<void> {
    await this.run(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id]);
  }

  /**
   * `runc checkpoint --leave-running`: CRIU writes the container's process
   * images to imagePath and its log and statistics to workPath, and the
   * container keeps running. runc runs in its own process group, so an
   * abort (deadline, cancelled call) kills runc and CRIU together.
   */
  checkpoint(id: string, imagePath: string, workPath: string, signal: AbortSignal): Promise<void> {
    return metrics.time(metrics.runtimeDuration, { command: 'checkpoint' }, () => this.checkpointOnce(id, imagePath, workPath, signal));
  }

  private checkpointOnce(id: string, imagePath: string, workPath: string, signal: AbortSignal): Promise<void> {
    const args = [...this.globalArgs(), 'checkpoint', '--leave-running', '--image-path', imagePath, '--work-path', workPath, id];
    return new Promise((resolve, reject) => {
      signal.throwIfAborted();
      const child = spawnChild(this.path, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const onAbort = () => void child.killGroup('SIGKILL');
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      });
      child.once('close', (code) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return reject(signal.reason);
        if (code === 0) return resolve();
        reject(new RuntimeError(`${this.path} checkpoint failed: ${runtimeMessage(stderr) || `exit code ${code}`}`, stderr, code));
      });
    });
  }

  /** Starts `runc exec` in the foreground, in its own process group, with piped stdio. */
  spawnExec(id: string, processFile: string) {
    return spawnPiped(this.path, [...this.globalArgs(), 'exec', '--process', processFile, id], { detached: true });
  }
}

/** runc writes its error as a logrus line or JSON; keep the message part only. */
export function runtimeMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  const messages = lines.map((line) => {
    try {
      const parsed = JSON.parse(line);
      if (parsed && typeof parsed.msg === 'string') return parsed.msg as string;
    } catch {
      // not JSON
    }
    const m = /msg="((?:[^"\\]|\\.)*)"/.exec(line);
    return m ? m[1]!.replace(/\\"/g, '"') : line;
  });
  return messages.join('; ');
}

function isNotExist(stderr: string): boolean {
  return /does not exist|container not found|not exist/i.test(stderr);
}
