// The infra process: a static catatonit (pause mode) as pid 1 of a pod's
// shared pid namespace, started in the pod's other namespaces and cgroup,
// detached so it outlives daemon restarts.
import { spawnChild } from '../sys/spawn.ts';
import { readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';

export interface InfraOptions {
  infraPath: string;
  netns?: string;
  ipcns?: string;
  utsns?: string;
  /** cgroup.procs files the process joins before it starts the infra. */
  cgroupProcs: string[];
  oomScoreAdj?: number;
}

export interface InfraProcess {
  /** The infra's pid on the host (pid 1 inside the pod's pid namespace). */
  pid: number;
  /** Its start time in clock ticks, telling it apart from a later process with the same pid. */
  startTime: number;
  /** The unshare process that forked it and waits for it. */
  parentPid: number;
}

// Joins the cgroups given before "--", then runs the rest of the arguments.
const JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || { echo "cannot join $1" >&2; exit 1; }; shift; done; shift; exec "$@"';

export async function startInfra(o: InfraOptions): Promise<InfraProcess> {
  const nsArgs = [o.netns && `--net=${o.netns}`, o.ipcns && `--ipc=${o.ipcns}`, o.utsns && `--uts=${o.utsns}`].filter(Boolean) as string[];
  const command = [...(nsArgs.length ? ['nsenter', ...nsArgs, '--'] : []), 'unshare', '--pid', '--fork', '--kill-child', '--', o.infraPath, '-P'];
  const child = spawnChild('/bin/sh', ['-c', JOIN_SCRIPT, 'sh', ...o.cgroupProcs, '--', ...command], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited (${signal ?? code}): ${stderr.trim()}`)));
  let spawnError = '';
  child.once('error', (err) => (spawnError = err.message));
  const parentPid = await child.spawned;
  if (!parentPid) throw new Error(`cannot start infra process ${o.infraPath}: ${spawnError}`);
  for (let i = 0; i < 500; i++) {
    const pid = await findChild(parentPid);
    if (pid) {
      child.stderr!.destroy();
      child.unref();
      const startTime = await processStartTime(pid);
      if (startTime === undefined) break;
      if (o.oomScoreAdj !== undefined) await writeFile(`/proc/${pid}/oom_score_adj`, String(o.oomScoreAdj)).catch(() => undefined);
      return { pid, startTime, parentPid };
    }
    const done = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10))]);
    if (done) throw new Error(`infra process ${o.infraPath} ${done}`);
  }
  try {
    process.kill(parentPid, 'SIGKILL');
  } catch {}
  throw new Error(`infra process ${o.infraPath} did not start`);
}

async function findChild(parent: number): Promise<number | undefined> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === parent) return Number(name);
  }
  return undefined;
}

/** Field 22 of /proc/<pid>/stat, or undefined when the process is gone. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); a zombie is as good as gone.
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return Number(fields[19]);
}

/** infraAlive without the thread pool: one read of /proc, for the calls kubelet makes in a loop. */
export function infraAliveSync(pid: number | undefined, startTime: number | undefined): boolean {
  if (!pid) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTime === undefined || Number(fields[19]) === startTime;
}

export async function infraAlive(pid: number | undefined, startTime: number | undefined): Promise<boolean> {
  if (!pid) return false;
  const now = await processStartTime(pid);
  return now !== undefined && (startTime === undefined || now === startTime);
}

/** Kills the infra process (and its unshare parent) and waits until it is gone. */
export async function killInfra(pid: number | undefined, startTime: number | undefined, parentPid?: number): Promise<void> {
  if (pid && (await infraAlive(pid, startTime))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    for (let i = 0; i < 500 && (await infraAlive(pid, startTime)); i++) await new Promise((r) => setTimeout(r, 10));
  }
  if (parentPid) {
    // unshare exits once its child is gone; a leftover zombie is reaped by its parent.
    for (let i = 0; i < 100 && (await processStartTime(parentPid)) !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
  }
}
