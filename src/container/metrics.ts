// ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor's container metrics
// (the names and label keys kubelet's /metrics/cadvisor shows) read from the
// pod's and containers' cgroups, processes, writable layers and network
// namespace. kubelet turns each descriptor into a Prometheus metric family
// and each Metric into a sample whose label values line up with the
// descriptor's label keys, so every sample carries exactly those values.
import { readdir, readFile, readlink, statfs } from 'node:fs/promises';
import type { Metric } from '../generated/runtime/v1/Metric.ts';
import type { MetricDescriptor } from '../generated/runtime/v1/MetricDescriptor.ts';
import type { SandboxRecord } from '../sandbox/record.ts';
import type { CgroupDetail } from '../cgroups/stats.ts';
import type { ContainerRecord } from './record.ts';

/** The labels every sample has: the object, its image, and the pod and container names kubelet uses. */
export const BASE_LABEL_KEYS = ['id', 'image', 'namespace', 'pod', 'container'];

type Kind = 'COUNTER' | 'GAUGE';
/** A value, or values each with the extra label values the descriptor names. */
type Sample = [value: number, extra: string[]];

/** What is known about one running container when its metrics are read. */
export interface ContainerFacts {
  cgroup?: CgroupDetail;
  processes?: { threads: number; fds: number; sockets: number };
  /** Soft RLIMIT_NOFILE of the container's first process; undefined when unlimited. */
  maxOpenFiles?: number;
  fs?: { usageBytes: number; limitBytes: number; inodesTotal: number; inodesFree: number };
  /** Block device names ("/dev/vda") by "major:minor". */
  deviceNames: Map<string, string>;
  /** Seconds since the epoch. */
  startedAt: number;
  now: number;
}

/** Pod-level facts: the interfaces of the pod's network namespace. */
export interface PodFacts {
  interfaces: NetDevCounters[];
}

export interface NetDevCounters {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

interface Def<F> {
  name: string;
  help: string;
  type: Kind;
  /** Label keys after the base ones. */
  extra?: string[];
  samples: (f: F) => Sample[] | number | undefined;
}

const secs = (nanos: number | undefined) => (nanos === undefined ? undefined : Math.floor(nanos / 1e9));
const usecToSecs = (usec: number | undefined) => (usec === undefined ? undefined : Math.floor(usec / 1e6));

function deviceLabel(f: ContainerFacts, major: number, minor: number): string {
  return f.deviceNames.get(`${major}:${minor}`) ?? `${major}:${minor}`;
}

const CONTAINER_METRICS: Array<Def<ContainerFacts>> = [
  { name: 'container_last_seen', help: 'Last time the runtime saw the container, in seconds since the epoch.', type: 'GAUGE', samples: (f) => f.now },
  { name: 'container_start_time_seconds', help: 'Start time of the container, in seconds since the epoch.', type: 'GAUGE', samples: (f) => f.startedAt },
  // CPU
  {
    name: 'container_cpu_usage_seconds_total',
    help: 'Cumulative CPU time consumed, in seconds.',
    type: 'COUNTER',
    extra: ['cpu'],
    samples: (f) => one(secs(f.cgroup?.cpu.totalNanos), ['total']),
  },
  {
    name: 'container_cpu_user_seconds_total',
    help: 'Cumulative user CPU time consumed, in seconds.',
    type: 'COUNTER',
    samples: (f) => secs(f.cgroup?.cpu.userNanos),
  },
  {
    name: 'container_cpu_system_seconds_total',
    help: 'Cumulative system CPU time consumed, in seconds.',
    type: 'COUNTER',
    samples: (f) => secs(f.cgroup?.cpu.systemNanos),
  },
  { name: 'container_cpu_cfs_periods_total', help: 'Number of elapsed CFS enforcement periods.', type: 'COUNTER', samples: (f) => f.cgroup?.cpu.periods },
  {
    name: 'container_cpu_cfs_throttled_periods_total',
    help: 'Number of CFS periods in which the container was throttled.',
    type: 'COUNTER',
    samples: (f) => f.cgroup?.cpu.throttledPeriods,
  },
  {
    name: 'container_cpu_cfs_throttled_seconds_total',
    help: 'Total time the container was throttled, in seconds.',
    type: 'COUNTER',
    samples: (f) => secs(f.cgroup?.cpu.throttledNanos),
  },
  // Memory
  {
    name: 'container_memory_usage_bytes',
    help: 'Current memory usage in bytes, including all memory regardless of when it was accessed.',
    type: 'GAUGE',
    samples: (f) => f.cgroup?.memory.usage,
  },
  { name: 'container_memory_max_usage_bytes', help: 'Maximum memory usage recorded, in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.maxUsage },
  {
    name: 'container_memory_working_set_bytes',
    help: 'Current working set in bytes: usage minus inactive file pages.',
    type: 'GAUGE',
    samples: (f) => f.cgroup?.memory.workingSet,
  },
  { name: 'container_memory_rss', help: 'Size of anonymous memory (RSS) in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.rss },
  { name: 'container_memory_cache', help: 'Page cache memory in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.cache },
  { name: 'container_memory_mapped_file', help: 'Size of memory-mapped files in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.mappedFile },
  { name: 'container_memory_kernel_usage', help: 'Kernel memory charged to the container, in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.kernel },
  { name: 'container_memory_swap', help: 'Swap usage in bytes.', type: 'GAUGE', samples: (f) => f.cgroup?.memory.swap },
  { name: 'container_memory_failcnt', help: 'Number of times memory usage hit the limit.', type: 'COUNTER', samples: (f) => f.cgroup?.memory.failcnt },
  {
    name: 'container_memory_failures_total',
    help: 'Cumulative count of memory allocation failures (page faults).',
    type: 'COUNTER',
    extra: ['failure_type', 'scope'],
    samples: (f) => {
      const m = f.cgroup?.memory;
      if (m?.pageFaults === undefined) return undefined;
      const result: Sample[] = [];
      for (const scope of ['container', 'hierarchy']) {
        result.push([m.pageFaults, ['pgfault', scope]]);
        if (m.majorPageFaults !== undefined) result.push([m.majorPageFaults, ['pgmajfault', scope]]);
      }
      return result;
    },
  },
  {
    name: 'container_oom_events_total',
    help: 'Count of out-of-memory kills in the container.',
    type: 'COUNTER',
    samples: (f) => f.cgroup?.memory.oomKills ?? (f.cgroup ? 0 : undefined),
  },
  // Hugepages
  {
    name: 'container_hugetlb_usage_bytes',
    help: 'Current hugepage usage in bytes.',
    type: 'GAUGE',
    extra: ['pagesize'],
    samples: (f) => f.cgroup?.hugetlb.map((h) => [h.usage, [h.pagesize]] as Sample),
  },
  {
    name: 'container_hugetlb_max_usage_bytes',
    help: 'Maximum hugepage usage recorded, in bytes.',
    type: 'GAUGE',
    extra: ['pagesize'],
    samples: (f) => f.cgroup?.hugetlb.filter((h) => h.maxUsage !== undefined).map((h) => [h.maxUsage!, [h.pagesize]] as Sample),
  },
  // Processes
  {
    name: 'container_processes',
    help: 'Number of processes running in the container.',
    type: 'GAUGE',
    samples: (f) => f.cgroup?.pids.current ?? f.cgroup?.procs.length,
  },
  { name: 'container_threads', help: 'Number of threads running in the container.', type: 'GAUGE', samples: (f) => f.processes?.threads },
  {
    name: 'container_threads_max',
    help: 'Maximum number of threads allowed in the container; 0 means no limit.',
    type: 'GAUGE',
    samples: (f) => (f.cgroup ? (f.cgroup.pids.max ?? 0) : undefined),
  },
  { name: 'container_file_descriptors', help: 'Number of open file descriptors in the container.', type: 'GAUGE', samples: (f) => f.processes?.fds },
  { name: 'container_sockets', help: 'Number of open sockets in the container.', type: 'GAUGE', samples: (f) => f.processes?.sockets },
  {
    name: 'container_ulimits_soft',
    help: "Soft ulimits of the container's first process (only limited ones are reported).",
    type: 'GAUGE',
    extra: ['ulimit'],
    samples: (f) => one(f.maxOpenFiles, ['max_open_files']),
  },
  // Filesystem (the writable layer on its filesystem)
  { name: 'container_fs_usage_bytes', help: "Bytes used by the container's writable layer.", type: 'GAUGE', samples: (f) => f.fs?.usageBytes },
  { name: 'container_fs_limit_bytes', help: 'Size in bytes of the filesystem holding the writable layer.', type: 'GAUGE', samples: (f) => f.fs?.limitBytes },
  { name: 'container_fs_inodes_total', help: 'Inodes of the filesystem holding the writable layer.', type: 'GAUGE', samples: (f) => f.fs?.inodesTotal },
  { name: 'container_fs_inodes_free', help: 'Free inodes of the filesystem holding the writable layer.', type: 'GAUGE', samples: (f) => f.fs?.inodesFree },
  // Block I/O
  {
    name: 'container_fs_reads_bytes_total',
    help: 'Cumulative bytes read from block devices.',
    type: 'COUNTER',
    extra: ['device'],
    samples: (f) => f.cgroup?.io.map((d) => [d.readBytes, [deviceLabel(f, d.major, d.minor)]] as Sample),
  },
  {
    name: 'container_fs_reads_total',
    help: 'Cumulative count of reads from block devices.',
    type: 'COUNTER',
    extra: ['device'],
    samples: (f) => f.cgroup?.io.map((d) => [d.reads, [deviceLabel(f, d.major, d.minor)]] as Sample),
  },
  {
    name: 'container_fs_writes_bytes_total',
    help: 'Cumulative bytes written to block devices.',
    type: 'COUNTER',
    extra: ['device'],
    samples: (f) => f.cgroup?.io.map((d) => [d.writeBytes, [deviceLabel(f, d.major, d.minor)]] as Sample),
  },
  {
    name: 'container_fs_writes_total',
    help: 'Cumulative count of writes to block devices.',
    type: 'COUNTER',
    extra: ['device'],
    samples: (f) => f.cgroup?.io.map((d) => [d.writes, [deviceLabel(f, d.major, d.minor)]] as Sample),
  },
  {
    name: 'container_blkio_device_usage_total',
    help: 'Block I/O bytes per device and operation.',
    type: 'COUNTER',
    extra: ['device', 'major', 'minor', 'operation'],
    samples: (f) =>
      f.cgroup?.io.flatMap((d) => {
        const labels = [deviceLabel(f, d.major, d.minor), String(d.major), String(d.minor)];
        return [
          [d.readBytes, [...labels, 'Read']],
          [d.writeBytes, [...labels, 'Write']],
          [d.readBytes + d.writeBytes, [...labels, 'Total']],
        ] as Sample[];
      }),
  },
  // Pressure stall information (cgroup v2 and the unified hierarchy of hybrid hosts)
  {
    name: 'container_pressure_cpu_waiting_seconds_total',
    help: 'Total time tasks waited for CPU, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.cpu?.some),
  },
  {
    name: 'container_pressure_cpu_stalled_seconds_total',
    help: 'Total time all tasks stalled on CPU, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.cpu?.full),
  },
  {
    name: 'container_pressure_memory_waiting_seconds_total',
    help: 'Total time tasks waited for memory, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.memory?.some),
  },
  {
    name: 'container_pressure_memory_stalled_seconds_total',
    help: 'Total time all tasks stalled on memory, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.memory?.full),
  },
  {
    name: 'container_pressure_io_waiting_seconds_total',
    help: 'Total time tasks waited for I/O, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.io?.some),
  },
  {
    name: 'container_pressure_io_stalled_seconds_total',
    help: 'Total time all tasks stalled on I/O, in seconds.',
    type: 'COUNTER',
    samples: (f) => usecToSecs(f.cgroup?.pressure.io?.full),
  },
  // Limits in force (0 means none)
  { name: 'container_spec_cpu_shares', help: 'CPU shares of the container.', type: 'GAUGE', samples: (f) => f.cgroup?.cpu.shares },
  { name: 'container_spec_cpu_period', help: 'CFS period of the container, in microseconds.', type: 'GAUGE', samples: (f) => f.cgroup?.cpu.period },
  {
    name: 'container_spec_cpu_quota',
    help: 'CFS quota of the container, in microseconds (reported when set).',
    type: 'GAUGE',
    samples: (f) => f.cgroup?.cpu.quota,
  },
  {
    name: 'container_spec_memory_limit_bytes',
    help: 'Memory limit of the container in bytes; 0 means none.',
    type: 'GAUGE',
    samples: (f) => (f.cgroup ? (f.cgroup.memory.limit ?? 0) : undefined),
  },
  {
    name: 'container_spec_memory_swap_limit_bytes',
    help: 'Memory plus swap limit of the container in bytes; 0 means none.',
    type: 'GAUGE',
    samples: (f) => (f.cgroup ? (f.cgroup.memory.swapLimit ?? 0) : undefined),
  },
  {
    name: 'container_spec_memory_reservation_limit_bytes',
    help: 'Memory reservation (soft limit) of the container in bytes; 0 means none.',
    type: 'GAUGE',
    samples: (f) => (f.cgroup ? (f.cgroup.memory.reservation ?? 0) : undefined),
  },
];

const POD_METRICS: Array<Def<PodFacts>> = [
  {
    name: 'container_network_receive_bytes_total',
    help: 'Cumulative count of bytes received.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.rxBytes, [i.name]] as Sample),
  },
  {
    name: 'container_network_receive_packets_total',
    help: 'Cumulative count of packets received.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.rxPackets, [i.name]] as Sample),
  },
  {
    name: 'container_network_receive_packets_dropped_total',
    help: 'Cumulative count of packets dropped while receiving.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.rxDropped, [i.name]] as Sample),
  },
  {
    name: 'container_network_receive_errors_total',
    help: 'Cumulative count of errors encountered while receiving.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.rxErrors, [i.name]] as Sample),
  },
  {
    name: 'container_network_transmit_bytes_total',
    help: 'Cumulative count of bytes transmitted.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.txBytes, [i.name]] as Sample),
  },
  {
    name: 'container_network_transmit_packets_total',
    help: 'Cumulative count of packets transmitted.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.txPackets, [i.name]] as Sample),
  },
  {
    name: 'container_network_transmit_packets_dropped_total',
    help: 'Cumulative count of packets dropped while transmitting.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.txDropped, [i.name]] as Sample),
  },
  {
    name: 'container_network_transmit_errors_total',
    help: 'Cumulative count of errors encountered while transmitting.',
    type: 'COUNTER',
    extra: ['interface'],
    samples: (p) => p.interfaces.map((i) => [i.txErrors, [i.name]] as Sample),
  },
];

function one(value: number | undefined, extra: string[]): Sample[] | undefined {
  return value === undefined ? undefined : [[value, extra]];
}

/** Every metric ListPodSandboxMetrics may report, with its help text and label keys. */
export function metricDescriptors(): MetricDescriptor[] {
  return [...CONTAINER_METRICS, ...POD_METRICS].map((d) => ({ name: d.name, help: d.help, label_keys: [...BASE_LABEL_KEYS, ...(d.extra ?? [])] }));
}

function toMetrics<F>(defs: Array<Def<F>>, facts: F, base: string[], timestamp: number): Metric[] {
  const metrics: Metric[] = [];
  for (const def of defs) {
    const got = def.samples(facts);
    if (got === undefined) continue;
    const samples: Sample[] = typeof got === 'number' ? [[got, []]] : got;
    for (const [value, extra] of samples) {
      if (!Number.isFinite(value) || extra.length !== (def.extra?.length ?? 0)) continue;
      metrics.push({ name: def.name, timestamp, metric_type: def.type, label_values: [...base, ...extra], value: { value: Math.max(0, Math.round(value)) } });
    }
  }
  return metrics;
}

/** The base label values of a container's samples. */
export function containerLabels(r: ContainerRecord, pod: SandboxRecord | undefined): string[] {
  const meta = pod?.config.metadata;
  return [r.id, r.imageRef, meta?.namespace ?? '', meta?.name ?? '', r.config.metadata?.name ?? ''];
}

/** The base label values of a pod's own samples (network): the container is "POD", as cAdvisor names the sandbox. */
export function podLabels(pod: SandboxRecord): string[] {
  const meta = pod.config.metadata;
  return [pod.id, '', meta?.namespace ?? '', meta?.name ?? '', 'POD'];
}

export function containerMetrics(r: ContainerRecord, pod: SandboxRecord | undefined, facts: ContainerFacts, timestamp: number): Metric[] {
  return toMetrics(CONTAINER_METRICS, facts, containerLabels(r, pod), timestamp);
}

export function podMetrics(pod: SandboxRecord, facts: PodFacts, timestamp: number): Metric[] {
  return toMetrics(POD_METRICS, facts, podLabels(pod), timestamp);
}

// ---- reading the facts -------------------------------------------------------

/** Parses /proc/<pid>/net/dev: every counter kubelet's network metrics need, per interface. */
export function parseNetDevCounters(text: string): NetDevCounters[] {
  const result: NetDevCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 16 || f.some((n) => !Number.isFinite(n))) continue;
    result.push({
      name: line.slice(0, colon).trim(),
      rxBytes: f[0]!,
      rxPackets: f[1]!,
      rxErrors: f[2]!,
      rxDropped: f[3]!,
      txBytes: f[8]!,
      txPackets: f[9]!,
      txErrors: f[10]!,
      txDropped: f[11]!,
    });
  }
  return result;
}

/** The soft "Max open files" of /proc/<pid>/limits; undefined when unlimited or unreadable. */
export function parseMaxOpenFiles(text: string | undefined): number | undefined {
  const line = text?.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/** Threads, open descriptors and sockets of the given processes (those that vanished meanwhile count nothing). */
export async function processCounts(pids: number[]): Promise<{ threads: number; fds: number; sockets: number }> {
  let threads = 0;
  let fds = 0;
  let sockets = 0;
  await Promise.all(
    pids.map(async (pid) => {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const t = /^Threads:\s*(\d+)/m.exec(status);
      if (t) threads += Number(t[1]);
      const entries = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      fds += entries.length;
      const targets = await Promise.all(entries.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
      sockets += targets.filter((t) => t.startsWith('socket:')).length;
    }),
  );
  return { threads, fds, sockets };
}

export async function readMaxOpenFiles(pid: number): Promise<number | undefined> {
  return pid > 0 ? parseMaxOpenFiles(await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => undefined)) : undefined;
}

/** Size and inodes of the filesystem holding dir. */
export async function filesystemOf(dir: string): Promise<{ limitBytes: number; inodesTotal: number; inodesFree: number } | undefined> {
  const s = await statfs(dir).catch(() => undefined);
  return s ? { limitBytes: s.blocks * s.bsize, inodesTotal: s.files, inodesFree: s.ffree } : undefined;
}

const deviceNames = new Map<string, string>();

/** /dev names of block devices by "major:minor" (from sysfs, remembered). */
export async function blockDeviceNames(devices: Array<{ major: number; minor: number }>): Promise<Map<string, string>> {
  for (const { major, minor } of devices) {
    const key = `${major}:${minor}`;
    if (deviceNames.has(key)) continue;
    const uevent = await readFile(`/sys/dev/block/${key}/uevent`, 'utf8').catch(() => '');
    const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
    deviceNames.set(key, name ? `/dev/${name}` : key);
  }
  return deviceNames;
}
