// Container and pod statistics for the *Stats and *Metrics RPCs, read from
// the cgroups (one pass of small file reads), the writable layer and the
// pod's network interfaces (/proc/<pid>/net/dev of a process in the pod).
import { readFile } from 'node:fs/promises';
import { diskUsage } from '../snapshot/usage.ts';
import type { ContainerStats } from '../generated/runtime/v1/ContainerStats.ts';
import type { PodSandboxStats } from '../generated/runtime/v1/PodSandboxStats.ts';
import type { NetworkUsage } from '../generated/runtime/v1/NetworkUsage.ts';
import type { MetricDescriptor } from '../generated/runtime/v1/MetricDescriptor.ts';
import type { PodSandboxMetrics } from '../generated/runtime/v1/PodSandboxMetrics.ts';
import type { SandboxRecord } from '../sandbox/record.ts';
import { matchesLabels } from '../sandbox/filter.ts';
import { cgroupFsPath, type CgroupDriver } from '../cgroups/cgroups.ts';
import { readCgroupDetail, readCgroupUsage, type CgroupUsage } from '../cgroups/stats.ts';
import {
  blockDeviceNames,
  containerMetrics,
  filesystemOf,
  metricDescriptors,
  parseNetDevCounters,
  podMetrics,
  processCounts,
  readMaxOpenFiles,
  type ContainerFacts,
} from './metrics.ts';
import type { ContainerRecord } from './record.ts';

export interface StatsSources {
  containers(): ContainerRecord[];
  sandboxes(): SandboxRecord[];
  driver: CgroupDriver;
  /** The writable (upper) directory of a container's rootfs, if it has one. */
  writableDir(record: ContainerRecord): string | undefined;
  /** Filesystem identifier reported for writable layers. */
  mountpoint: string;
}

export interface StatsFilter {
  id?: string;
  pod_sandbox_id?: string;
  label_selector?: Record<string, string>;
}

const u64 = (value: number | undefined) => (value === undefined ? null : { value: Math.max(0, Math.round(value)) });

export class StatsService {
  private readonly sources: StatsSources;
  /** The last CPU sample per cgroup, for usage_nano_cores over the last interval. */
  private readonly lastCpu = new Map<string, { nanos: number; at: number }>();

  constructor(sources: StatsSources) {
    this.sources = sources;
  }

  /** Stats of the containers matching the filter (running or created ones have a cgroup). */
  async containerStats(filter: StatsFilter = {}): Promise<ContainerStats[]> {
    const records = this.sources.containers().filter((r) => matchesContainer(r, filter));
    return Promise.all(records.map((r) => this.oneContainer(r)));
  }

  async oneContainer(r: ContainerRecord): Promise<ContainerStats> {
    const now = nowNanos();
    const usage = r.cgroupsPath ? await readCgroupUsage(cgroupFsPath(r.cgroupsPath)).catch(() => undefined) : undefined;
    const writable = this.sources.writableDir(r);
    const layer = writable ? await diskUsage(writable) : undefined;
    return {
      attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
      cpu: this.cpu(r.id, usage, now),
      memory: memory(usage, now),
      swap: { timestamp: now, swap_usage_bytes: u64(usage?.swapUsage), swap_available_bytes: u64(available(usage?.swapLimit, usage?.swapUsage)) },
      writable_layer: {
        timestamp: now,
        fs_id: { mountpoint: this.sources.mountpoint },
        used_bytes: u64(layer?.bytes ?? 0),
        inodes_used: u64(layer?.inodes ?? 0),
      },
    };
  }

  async podStats(filter: StatsFilter = {}): Promise<PodSandboxStats[]> {
    const pods = this.sources
      .sandboxes()
      .filter((s) => (!filter.id || s.id.startsWith(filter.id)) && matchesLabels(s.config.labels ?? {}, filter.label_selector));
    return Promise.all(pods.map((pod) => this.onePod(pod)));
  }

  async onePod(pod: SandboxRecord): Promise<PodSandboxStats> {
    const now = nowNanos();
    const members = this.sources.containers().filter((c) => c.sandboxId === pod.id);
    const usage = await readCgroupUsage(cgroupFsPath(pod.cgroupParent, this.sources.driver)).catch(() => undefined);
    const containers = await Promise.all(members.map((c) => this.oneContainer(c)));
    const pid = pod.infraPid || members.find((c) => c.state === 'CONTAINER_RUNNING' && c.pid)?.pid;
    return {
      attributes: { id: pod.id, metadata: pod.config.metadata, labels: pod.config.labels, annotations: pod.config.annotations },
      linux: {
        cpu: this.cpu(`pod:${pod.id}`, usage, now),
        memory: memory(usage, now),
        network: pid && pod.namespaces.network ? await networkUsage(pid, now) : null,
        process: { timestamp: now, process_count: u64(usage?.processes) },
        containers,
      },
    };
  }

  private cpu(key: string, usage: CgroupUsage | undefined, now: number) {
    const nanos = usage?.cpuNanos;
    let nanoCores: number | undefined;
    const last = this.lastCpu.get(key);
    if (nanos !== undefined) {
      if (last && now > last.at && nanos >= last.nanos) nanoCores = ((nanos - last.nanos) / (now - last.at)) * 1e9;
      this.lastCpu.set(key, { nanos, at: now });
    }
    return { timestamp: now, usage_core_nano_seconds: u64(nanos), usage_nano_cores: u64(nanoCores) };
  }

  /** Forgets CPU samples of objects that no longer exist. */
  prune(): void {
    const live = new Set([...this.sources.containers().map((c) => c.id), ...this.sources.sandboxes().map((s) => `pod:${s.id}`)]);
    for (const key of this.lastCpu.keys()) if (!live.has(key)) this.lastCpu.delete(key);
  }

  descriptors(): MetricDescriptor[] {
    return metricDescriptors();
  }

  /** cAdvisor-named metrics per pod (network) and per running container (everything else). */
  async podMetrics(): Promise<PodSandboxMetrics[]> {
    const now = nowNanos();
    const containers = this.sources.containers();
    return Promise.all(
      this.sources.sandboxes().map(async (pod) => {
        const running = containers.filter((c) => c.sandboxId === pod.id && c.state === 'CONTAINER_RUNNING');
        const container_metrics = await Promise.all(
          running.map(async (c) => ({ container_id: c.id, metrics: containerMetrics(c, pod, await this.containerFacts(c, now), now) })),
        );
        const pid = pod.infraPid || running.find((c) => c.pid)?.pid;
        const netDev = pid && pod.namespaces.network ? await readFile(`/proc/${pid}/net/dev`, 'utf8').catch(() => '') : '';
        const interfaces = parseNetDevCounters(netDev).filter((i) => i.name !== 'lo');
        return { pod_sandbox_id: pod.id, metrics: podMetrics(pod, { interfaces }, now), container_metrics };
      }),
    );
  }

  private async containerFacts(r: ContainerRecord, now: number): Promise<ContainerFacts> {
    const cgroup = r.cgroupsPath ? await readCgroupDetail(cgroupFsPath(r.cgroupsPath)).catch(() => undefined) : undefined;
    const writable = this.sources.writableDir(r);
    const [processes, maxOpenFiles, layer, fs, deviceNames] = await Promise.all([
      cgroup ? processCounts(cgroup.procs) : undefined,
      readMaxOpenFiles(r.pid),
      writable ? diskUsage(writable) : undefined,
      writable ? filesystemOf(writable) : undefined,
      blockDeviceNames(cgroup?.io ?? []),
    ]);
    return {
      cgroup,
      processes,
      maxOpenFiles,
      fs: fs ? { ...fs, usageBytes: layer?.bytes ?? 0 } : undefined,
      deviceNames,
      startedAt: Math.floor((r.startedAt || r.createdAt) / 1e9),
      now: Math.floor(now / 1e9),
    };
  }
}

function matchesContainer(r: ContainerRecord, filter: StatsFilter): boolean {
  if (filter.id && !r.id.startsWith(filter.id)) return false;
  if (filter.pod_sandbox_id && !r.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
  return matchesLabels(r.config.labels ?? {}, filter.label_selector);
}

function memory(usage: CgroupUsage | undefined, now: number) {
  return {
    timestamp: now,
    usage_bytes: u64(usage?.memoryUsage),
    working_set_bytes: u64(usage?.workingSet),
    rss_bytes: u64(usage?.rss),
    page_faults: u64(usage?.pageFaults),
    major_page_faults: u64(usage?.majorPageFaults),
    available_bytes: u64(available(usage?.memoryLimit, usage?.workingSet)),
  };
}

function available(limit: number | undefined, used: number | undefined): number | undefined {
  return limit === undefined ? undefined : Math.max(0, limit - (used ?? 0));
}

function nowNanos(): number {
  return Date.now() * 1e6;
}

/** Parses /proc/<pid>/net/dev into per-interface counters. */
export function parseNetDev(text: string): Array<{ name: string; rx_bytes: number; rx_errors: number; tx_bytes: number; tx_errors: number }> {
  const result = [];
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest) continue;
    const f = rest.trim().split(/\s+/).map(Number);
    result.push({ name: name!.trim(), rx_bytes: f[0]!, rx_errors: f[2]!, tx_bytes: f[8]!, tx_errors: f[10]! });
  }
  return result;
}

async function networkUsage(pid: number, now: number): Promise<NetworkUsage | null> {
  const text = await readFile(`/proc/${pid}/net/dev`, 'utf8').catch(() => undefined);
  if (!text) return null;
  const interfaces = parseNetDev(text)
    .filter((i) => i.name !== 'lo')
    .map((i) => ({ name: i.name, rx_bytes: u64(i.rx_bytes), rx_errors: u64(i.rx_errors), tx_bytes: u64(i.tx_bytes), tx_errors: u64(i.tx_errors) }));
  return { timestamp: now, default_interface: interfaces.find((i) => i.name === 'eth0') ?? interfaces[0] ?? null, interfaces };
}
