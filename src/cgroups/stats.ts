// Reading usage from a cgroup's files (v1 and v2): CPU time, memory
// (usage, working set, RSS, page faults), swap, process count. One read of a
// few small files per cgroup — no subprocess — so listing many is cheap.
// The metrics RPCs read more of them (readCgroupDetail): CFS throttling,
// memory breakdown and failures, OOM kills, block I/O, hugepages, pressure
// stall totals and the limits in force.
import { readdir, readFile } from 'node:fs/promises';
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

/** Pressure stall totals of one resource, in microseconds ("some" tasks waiting, "full" all stalled). */
export interface Pressure {
  some?: number;
  full?: number;
}

/** Per-device block I/O of a cgroup. */
export interface DeviceIo {
  major: number;
  minor: number;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
}

/**
 * Everything the cAdvisor-named metrics report about one cgroup. Limits that
 * are not set are undefined; so is any figure the host's cgroups do not keep.
 */
export interface CgroupDetail {
  cpu: {
    totalNanos?: number;
    userNanos?: number;
    systemNanos?: number;
    periods?: number;
    throttledPeriods?: number;
    throttledNanos?: number;
    shares?: number;
    /** CFS quota and period in microseconds; quota undefined means none. */
    quota?: number;
    period?: number;
  };
  memory: {
    usage?: number;
    maxUsage?: number;
    cache?: number;
    rss?: number;
    mappedFile?: number;
    kernel?: number;
    swap?: number;
    workingSet?: number;
    failcnt?: number;
    pageFaults?: number;
    majorPageFaults?: number;
    oomKills?: number;
    limit?: number;
    /** Memory plus swap, as the CRI's memory_swap_limit_in_bytes counts it. */
    swapLimit?: number;
    reservation?: number;
  };
  pids: { current?: number; max?: number };
  io: DeviceIo[];
  /** Hugepage usage per page size ("2MB", "1GB"). */
  hugetlb: Array<{ pagesize: string; usage: number; maxUsage?: number }>;
  pressure: { cpu?: Pressure; memory?: Pressure; io?: Pressure };
  /** The processes in the cgroup. */
  procs: number[];
}

/** Parses a PSI file (cpu.pressure, memory.pressure, io.pressure): the cumulative totals. */
export function parsePressure(text: string | undefined): Pressure | undefined {
  if (!text) return undefined;
  const result: Pressure = {};
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    const total = fields.find((f) => f.startsWith('total='));
    if ((kind === 'some' || kind === 'full') && total && /^\d+$/.test(total.slice(6))) result[kind] = Number(total.slice(6));
  }
  return result.some === undefined && result.full === undefined ? undefined : result;
}

/** Parses v1 blkio.throttle.io_service_bytes / io_serviced ("8:0 Read 4096" lines) into read and write counts per device. */
export function parseBlkioV1(text: string | undefined): Map<string, { read: number; write: number }> {
  const devices = new Map<string, { read: number; write: number }>();
  for (const line of (text ?? '').split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device || !/^\d+:\d+$/.test(device) || !value || !/^\d+$/.test(value)) continue;
    const entry = devices.get(device) ?? { read: 0, write: 0 };
    if (op === 'Read') entry.read = Number(value);
    else if (op === 'Write') entry.write = Number(value);
    else continue;
    devices.set(device, entry);
  }
  return devices;
}

/** Parses v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..."). */
export function parseIoStat(text: string | undefined): DeviceIo[] {
  const result: DeviceIo[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [device, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(device ?? '');
    if (!m) continue;
    const kv = new Map(
      fields
        .map((f) => f.split('=') as [string, string])
        .filter(([, v]) => v !== undefined && /^\d+$/.test(v))
        .map(([k, v]) => [k, Number(v)]),
    );
    result.push({
      major: Number(m[1]),
      minor: Number(m[2]),
      readBytes: kv.get('rbytes') ?? 0,
      writeBytes: kv.get('wbytes') ?? 0,
      reads: kv.get('rios') ?? 0,
      writes: kv.get('wios') ?? 0,
    });
  }
  return result;
}

function devicesIo(bytes: Map<string, { read: number; write: number }>, ops: Map<string, { read: number; write: number }>): DeviceIo[] {
  const result: DeviceIo[] = [];
  for (const device of new Set([...bytes.keys(), ...ops.keys()])) {
    const [major, minor] = device.split(':').map(Number) as [number, number];
    const b = bytes.get(device);
    const o = ops.get(device);
    result.push({ major, minor, readBytes: b?.read ?? 0, writeBytes: b?.write ?? 0, reads: o?.read ?? 0, writes: o?.write ?? 0 });
  }
  return result;
}

function parseProcs(text: string | undefined): number[] {
  return (text ?? '')
    .split('\n')
    .filter((l) => /^\d+$/.test(l.trim()))
    .map(Number);
}

/** cpu.weight (v2) back to the cpu.shares it was converted from, as runc converts. */
export function weightToShares(weight: number): number {
  return Math.round(2 + ((weight - 1) * 262142) / 9999);
}

/** Detail from v1 files (name → content; hugetlb files as found in the hugetlb hierarchy). */
export function detailFromV1(files: Record<string, string | undefined>): CgroupDetail {
  const usage = usageFromV1(files);
  const memory = parseKeyValues(files['memory.stat'] ?? '');
  const cpuStat = parseKeyValues(files['cpu.stat'] ?? '');
  const cpuacct = parseKeyValues(files['cpuacct.stat'] ?? '');
  // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
  const ticks = (n: number | undefined) => (n === undefined ? undefined : n * 10_000_000);
  const quota = Number(files['cpu.cfs_quota_us']?.trim());
  const oom = parseKeyValues(files['memory.oom_control'] ?? '');
  const memswLimit = parseLimit(files['memory.memsw.limit_in_bytes']);
  const pidsMax = files['pids.max']?.trim();
  const hugetlb: CgroupDetail['hugetlb'] = [];
  for (const [name, content] of Object.entries(files)) {
    const m = /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(name);
    if (!m || numberOf(content) === undefined) continue;
    hugetlb.push({ pagesize: m[1]!, usage: numberOf(content)!, maxUsage: numberOf(files[`hugetlb.${m[1]}.max_usage_in_bytes`]) });
  }
  return {
    cpu: {
      totalNanos: usage.cpuNanos,
      userNanos: numberOf(files['cpuacct.usage_user']) ?? ticks(cpuacct.get('user')),
      systemNanos: numberOf(files['cpuacct.usage_sys']) ?? ticks(cpuacct.get('system')),
      periods: cpuStat.get('nr_periods'),
      throttledPeriods: cpuStat.get('nr_throttled'),
      throttledNanos: cpuStat.get('throttled_time'),
      shares: numberOf(files['cpu.shares']),
      quota: Number.isFinite(quota) && quota > 0 ? quota : undefined,
      period: numberOf(files['cpu.cfs_period_us']),
    },
    memory: {
      usage: usage.memoryUsage,
      maxUsage: numberOf(files['memory.max_usage_in_bytes']),
      cache: memory.get('total_cache'),
      rss: usage.rss,
      mappedFile: memory.get('total_mapped_file'),
      kernel: numberOf(files['memory.kmem.usage_in_bytes']),
      swap: usage.swapUsage,
      workingSet: usage.workingSet,
      failcnt: numberOf(files['memory.failcnt']),
      pageFaults: usage.pageFaults,
      majorPageFaults: usage.majorPageFaults,
      oomKills: oom.get('oom_kill'),
      limit: usage.memoryLimit,
      swapLimit: memswLimit,
      reservation: parseLimit(files['memory.soft_limit_in_bytes']),
    },
    pids: { current: usage.processes, max: pidsMax && pidsMax !== 'max' ? numberOf(pidsMax) : undefined },
    io: devicesIo(parseBlkioV1(files['blkio.throttle.io_service_bytes_recursive']), parseBlkioV1(files['blkio.throttle.io_serviced_recursive'])),
    hugetlb,
    pressure: { cpu: parsePressure(files['cpu.pressure']), memory: parsePressure(files['memory.pressure']), io: parsePressure(files['io.pressure']) },
    procs: parseProcs(files['cgroup.procs']),
  };
}

/** Detail from v2 files (name → content). */
export function detailFromV2(files: Record<string, string | undefined>): CgroupDetail {
  const usage = usageFromV2(files);
  const memory = parseKeyValues(files['memory.stat'] ?? '');
  const cpuStat = parseKeyValues(files['cpu.stat'] ?? '');
  const events = parseKeyValues(files['memory.events'] ?? '');
  const us = (n: number | undefined) => (n === undefined ? undefined : n * 1000);
  const [quota, period] = (files['cpu.max']?.trim() ?? '').split(/\s+/);
  const weight = numberOf(files['cpu.weight']);
  const kernel =
    memory.get('kernel') ??
    (memory.has('kernel_stack') || memory.has('slab')
      ? (memory.get('kernel_stack') ?? 0) +
        (memory.get('slab') ?? 0) +
        (memory.get('pagetables') ?? 0) +
        (memory.get('percpu') ?? 0) +
        (memory.get('sock') ?? 0)
      : undefined);
  const swapMax = parseLimit(files['memory.swap.max']);
  const pidsMax = files['pids.max']?.trim();
  const hugetlb: CgroupDetail['hugetlb'] = [];
  for (const [name, content] of Object.entries(files)) {
    const m = /^hugetlb\.([^.]+)\.current$/.exec(name);
    if (m && numberOf(content) !== undefined) hugetlb.push({ pagesize: m[1]!, usage: numberOf(content)! });
  }
  return {
    cpu: {
      totalNanos: usage.cpuNanos,
      userNanos: us(cpuStat.get('user_usec')),
      systemNanos: us(cpuStat.get('system_usec')),
      periods: cpuStat.get('nr_periods'),
      throttledPeriods: cpuStat.get('nr_throttled'),
      throttledNanos: us(cpuStat.get('throttled_usec')),
      shares: weight === undefined ? undefined : weightToShares(weight),
      quota: quota && /^\d+$/.test(quota) ? Number(quota) : undefined,
      period: period && /^\d+$/.test(period) ? Number(period) : undefined,
    },
    memory: {
      usage: usage.memoryUsage,
      maxUsage: numberOf(files['memory.peak']),
      cache: memory.get('file'),
      rss: usage.rss,
      mappedFile: memory.get('file_mapped'),
      kernel,
      swap: usage.swapUsage,
      workingSet: usage.workingSet,
      failcnt: events.get('max'),
      pageFaults: usage.pageFaults,
      majorPageFaults: usage.majorPageFaults,
      oomKills: events.get('oom_kill'),
      limit: usage.memoryLimit,
      swapLimit: usage.memoryLimit !== undefined && swapMax !== undefined ? usage.memoryLimit + swapMax : undefined,
      reservation: parseLimit(files['memory.low']),
    },
    pids: { current: usage.processes, max: pidsMax && pidsMax !== 'max' ? numberOf(pidsMax) : undefined },
    io: parseIoStat(files['io.stat']),
    hugetlb,
    pressure: { cpu: parsePressure(files['cpu.pressure']), memory: parsePressure(files['memory.pressure']), io: parsePressure(files['io.pressure']) },
    procs: parseProcs(files['cgroup.procs']),
  };
}

const V2_DETAIL_FILES = [
  ...V2_FILES,
  'cpu.max',
  'cpu.weight',
  'memory.peak',
  'memory.events',
  'memory.low',
  'pids.max',
  'io.stat',
  'cpu.pressure',
  'memory.pressure',
  'io.pressure',
  'cgroup.procs',
];
const V1_DETAIL_FILES: Record<string, string[]> = {
  cpuacct: ['cpuacct.usage', 'cpuacct.usage_user', 'cpuacct.usage_sys', 'cpuacct.stat'],
  cpu: ['cpu.stat', 'cpu.shares', 'cpu.cfs_quota_us', 'cpu.cfs_period_us'],
  memory: [
    ...V1_FILES.memory!,
    'memory.max_usage_in_bytes',
    'memory.failcnt',
    'memory.kmem.usage_in_bytes',
    'memory.oom_control',
    'memory.soft_limit_in_bytes',
    'cgroup.procs',
  ],
  pids: ['pids.current', 'pids.max'],
  blkio: ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive'],
};
const PSI_FILES = ['cpu.pressure', 'memory.pressure', 'io.pressure'];

/**
 * Reads everything the metrics report about a cgroup; undefined when it does
 * not exist (anymore). On hybrid hosts the pressure files come from the
 * unified hierarchy, where runc places the container too.
 */
export async function readCgroupDetail(fsPath: string): Promise<CgroupDetail | undefined> {
  cachedHierarchies ??= hierarchies();
  const v1 = cachedHierarchies.filter((h) => h.version === 'v1');
  const unified = cachedHierarchies.find((h) => h.version === 'v2');
  if (!v1.length) {
    if (unified?.mount !== '/sys/fs/cgroup') return undefined;
    const dir = join(unified.mount, fsPath);
    const files = await readAll(dir, [...V2_DETAIL_FILES, ...(await hugetlbNames(dir, ['current']))]);
    return files['memory.current'] === undefined && files['cpu.stat'] === undefined ? undefined : detailFromV2(files);
  }
  const files: Record<string, string | undefined> = {};
  for (const [controller, names] of Object.entries(V1_DETAIL_FILES)) {
    const hierarchy = v1.find((h) => h.controllers.includes(controller));
    if (hierarchy) Object.assign(files, await readAll(join(hierarchy.mount, fsPath), names));
  }
  const hugetlb = v1.find((h) => h.controllers.includes('hugetlb'));
  if (hugetlb) {
    const dir = join(hugetlb.mount, fsPath);
    Object.assign(files, await readAll(dir, await hugetlbNames(dir, ['usage_in_bytes', 'max_usage_in_bytes'])));
  }
  if (unified) Object.assign(files, await readAll(join(unified.mount, fsPath), PSI_FILES));
  return files['memory.usage_in_bytes'] === undefined && files['cpuacct.usage'] === undefined ? undefined : detailFromV1(files);
}

async function hugetlbNames(dir: string, suffixes: string[]): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('hugetlb.') && suffixes.some((s) => n.endsWith(`.${s}`)) && n.split('.').length === 3);
}
