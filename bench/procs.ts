// What the benchmark reads about processes from /proc: resident and
// proportional set sizes, CPU time, command lines, parents.
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100;

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** VmRSS of a process in MiB (0 when it is gone). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) / 1024 : 0;
}

/** Pss of a process in MiB, from smaps_rollup (0 when it is gone). */
export function pssMiB(pid: number): number {
  const m = /^Pss:\s+(\d+)/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? '');
  return m ? Number(m[1]) / 1024 : 0;
}

/** User + system CPU milliseconds a process used so far. */
export function cpuMs(pid: number): number {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

/** Every process on the host. */
export function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = read(`/proc/${name}/stat`);
    if (!stat) continue;
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    out.push({ pid: Number(name), ppid, comm, cmdline: (read(`/proc/${name}/cmdline`) ?? '').replace(/\0/g, ' ').trim() });
  }
  return out;
}
