// Reading usage from a cgroup's files (v1 and v2): CPU time, memory
// (usage, working set, RSS, page faults), swap, process count. One read of a
// few small files per cgroup — no subprocess — so listing many is cheap.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hierarchies, type Hierarchy } from './cgroups.ts';

export interface CgroupUsage {
  /** Cumulative CPU time in nanoseconds. */
  cpuNanos?: number;
  memoryUsage?: number;
  workingSet?: number;
  rss?: number;
  pageFaults?: number;
  majorPageFaults?: number;
  /** Memory limit, when one is set. */
  memoryLimit?: number;
  swapUsage?: number;
  /** Swap limit, when one is set. */
  swapLimit?: number;
  processes?: number;
}

/** Parses "key value" lines (memory.stat, cpu.stat). */
export function parseKeyValues(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) values.set(key, Number(value));
  }
  return values;
}

/** A limit file's value; "max" and v1's huge "no limit" numbers mean none. */
export function parseLimit(text: string | undefined): number | undefined {
  const value = text?.trim();
  if (!value || value === 'max') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n < 2 ** 62 ? n : undefined;
}

/** Working set as kubelet computes it: usage minus inactive file pages. */
export function workingSet(usage: number, inactiveFile: number | undefined): number {
  return Math.max(0, usage - (inactiveFile ?? 0));
}

/** Usage from v2 files (given as name → content). */
export function usageFromV2(files: Record<string, string | undefined>): CgroupUsage {
  const cpu = parseKeyValues(files['cpu.stat'] ?? '');
  const memory = parseKeyValues(files['memory.stat'] ?? '');
  const usage = numberOf(files['memory.current']);
  return {
    cpuNanos: cpu.has('usage_usec') ? cpu.get('usage_usec')! * 1000 : undefined,
    memoryUsage: usage,
    workingSet: usage === undefined ? undefined : workingSet(usage, memory.get('inactive_file')),
    rss: memory.get('anon'),
    pageFaults: memory.get('pgfault'),
    majorPageFaults: memory.get('pgmajfault'),
    memoryLimit: parseLimit(files['memory.max']),
    swapUsage: numberOf(files['memory.swap.current']),
    swapLimit: parseLimit(files['memory.swap.max']),
    processes: numberOf(files['pids.current']),
  };
}

/** Usage from v1 files (given as name → content). memsw counts memory + swap. */
export function usageFromV1(files: Record<string, string | undefined>): CgroupUsage {
  const memory = parseKeyValues(files['memory.stat'] ?? '');
  const usage = numberOf(files['memory.usage_in_bytes']);
  const memsw = numberOf(files['memory.memsw.usage_in_bytes']);
  const limit = parseLimit(files['memory.limit_in_bytes']);
  const memswLimit = parseLimit(files['memory.memsw.limit_in_bytes']);
  return {
    cpuNanos: numberOf(files['cpuacct.usage']),
    memoryUsage: usage,
    workingSet: usage === undefined ? undefined : workingSet(usage, memory.get('total_inactive_file')),
    rss: memory.get('total_rss'),
    pageFaults: memory.get('total_pgfault'),
    majorPageFaults: memory.get('total_pgmajfault'),
    memoryLimit: limit,
    swapUsage: memsw !== undefined && usage !== undefined ? Math.max(0, memsw - usage) : undefined,
    swapLimit: memswLimit !== undefined && limit !== undefined ? Math.max(0, memswLimit - limit) : undefined,
    processes: numberOf(files['pids.current']),
  };
}

function numberOf(text: string | undefined): number | undefined {
  const value = text?.trim();
  return value && /^\d+$/.test(value) ? Number(value) : undefined;
}

const V2_FILES = ['cpu.stat', 'memory.current', 'memory.stat', 'memory.max', 'memory.swap.current', 'memory.swap.max', 'pids.current'];
const V1_FILES: Record<string, string[]> = {
  cpuacct: ['cpuacct.usage'],
  memory: ['memory.usage_in_bytes', 'memory.stat', 'memory.limit_in_bytes', 'memory.memsw.usage_in_bytes', 'memory.memsw.limit_in_bytes'],
  pids: ['pids.current'],
};

let cachedHierarchies: Hierarchy[] | undefined;

/** Reads a cgroup's usage; undefined when the cgroup does not exist (anymore). */
export async function readCgroupUsage(fsPath: string): Promise<CgroupUsage | undefined> {
  cachedHierarchies ??= hierarchies();
  const v1 = cachedHierarchies.filter((h) => h.version === 'v1');
  if (!v1.length) {
    const root = cachedHierarchies.find((h) => h.version === 'v2' && h.mount === '/sys/fs/cgroup');
    if (!root) return undefined;
    const files = await readAll(join(root.mount, fsPath), V2_FILES);
    return files['memory.current'] === undefined && files['cpu.stat'] === undefined ? undefined : usageFromV2(files);
  }
  const files: Record<string, string | undefined> = {};
  for (const [controller, names] of Object.entries(V1_FILES)) {
    const hierarchy = v1.find((h) => h.controllers.includes(controller));
    if (hierarchy) Object.assign(files, await readAll(join(hierarchy.mount, fsPath), names));
  }
  return files['memory.usage_in_bytes'] === undefined && files['cpuacct.usage'] === undefined ? undefined : usageFromV1(files);
}

async function readAll(dir: string, names: string[]): Promise<Record<string, string | undefined>> {
  const contents = await Promise.all(names.map((name) => readFile(join(dir, name), 'utf8').catch(() => undefined)));
  return Object.fromEntries(names.map((name, i) => [name, contents[i]]));
}
