// Container resources between NRI's LinuxResources and the shapes the runtime
// keeps: CRI's LinuxContainerResources (requests and updates) and the OCI
// linux.resources of a spec.
import type { LinuxContainerResources, LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { LinuxResources } from './types.ts';

/** The OCI linux.resources fields NRI reports. */
export interface OciResourcesView {
  cpu?: { shares?: number; quota?: number; period?: number; realtimeRuntime?: number; realtimePeriod?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; reservation?: number; swap?: number; kernel?: number; kernelTCP?: number; swappiness?: number; disableOOMKiller?: boolean };
  pids?: { limit: number };
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  unified?: Record<string, string>;
}

const wrap = <T>(v: T | undefined) => (v === undefined ? null : { value: v });

export function ociToNriResources(r: OciResourcesView): LinuxResources {
  return {
    cpu: r.cpu
      ? {
          shares: wrap(r.cpu.shares),
          quota: wrap(r.cpu.quota),
          period: wrap(r.cpu.period),
          realtime_runtime: wrap(r.cpu.realtimeRuntime),
          realtime_period: wrap(r.cpu.realtimePeriod),
          cpus: r.cpu.cpus ?? '',
          mems: r.cpu.mems ?? '',
        }
      : null,
    memory: r.memory
      ? {
          limit: wrap(r.memory.limit),
          reservation: wrap(r.memory.reservation),
          swap: wrap(r.memory.swap),
          kernel: wrap(r.memory.kernel),
          kernel_tcp: wrap(r.memory.kernelTCP),
          swappiness: wrap(r.memory.swappiness),
          disable_oom_killer: wrap(r.memory.disableOOMKiller),
        }
      : null,
    pids: r.pids ? { limit: r.pids.limit } : null,
    hugepage_limits: (r.hugepageLimits ?? []).map((h) => ({ page_size: h.pageSize, limit: h.limit })),
    unified: r.unified ?? {},
  };
}

export function criToNriResources(r: LinuxContainerResources__Output | LinuxContainerResources | null | undefined): LinuxResources {
  if (!r) return {};
  const num = (v: number | string | { toString(): string } | undefined | null) => (v === undefined || v === null ? undefined : Number(v));
  const positive = (v: number | undefined) => (v ? { value: v } : null);
  return {
    cpu: {
      shares: positive(num(r.cpu_shares)),
      quota: positive(num(r.cpu_quota)),
      period: positive(num(r.cpu_period)),
      cpus: r.cpuset_cpus ?? '',
      mems: r.cpuset_mems ?? '',
    },
    memory: {
      limit: positive(num(r.memory_limit_in_bytes)),
      swap: positive(num(r.memory_swap_limit_in_bytes)),
    },
    hugepage_limits: (r.hugepage_limits ?? []).map((h) => ({ page_size: h.page_size ?? '', limit: num(h.limit) ?? 0 })),
    unified: { ...(r.unified ?? {}) },
  };
}

/**
 * The CRI resources a container gets when NRI resources (as plugins adjusted
 * or requested them) are applied over its current ones. NRI fields with no
 * CRI counterpart (pids, realtime, kernel memory) are reported, not applied.
 */
export function nriToCriResources(
  r: LinuxResources,
  base: LinuxContainerResources | null | undefined,
): { resources: LinuxContainerResources; unsupported: string[] } {
  const out: LinuxContainerResources = { ...(base ?? {}) };
  const unsupported: string[] = [];
  const value = (w: { value?: number | string | { toString(): string } } | null | undefined) => (w ? Number(w.value ?? 0) : undefined);
  const cpu = r.cpu;
  if (cpu) {
    if (cpu.shares) out.cpu_shares = value(cpu.shares);
    if (cpu.quota) out.cpu_quota = value(cpu.quota);
    if (cpu.period) out.cpu_period = value(cpu.period);
    if (cpu.cpus) out.cpuset_cpus = cpu.cpus;
    if (cpu.mems) out.cpuset_mems = cpu.mems;
    if (cpu.realtime_runtime || cpu.realtime_period) unsupported.push('cpu realtime');
  }
  const memory = r.memory;
  if (memory) {
    if (memory.limit) out.memory_limit_in_bytes = value(memory.limit);
    if (memory.swap) out.memory_swap_limit_in_bytes = value(memory.swap);
    if (memory.reservation || memory.kernel || memory.kernel_tcp || memory.swappiness || memory.disable_oom_killer || memory.use_hierarchy)
      unsupported.push('memory settings other than limit and swap');
  }
  if (r.hugepage_limits?.length) {
    const bySize = new Map((out.hugepage_limits ?? []).map((h) => [h.page_size, h]));
    for (const h of r.hugepage_limits) bySize.set(h.page_size, { page_size: h.page_size, limit: Number(h.limit ?? 0) });
    out.hugepage_limits = [...bySize.values()];
  }
  if (r.unified && Object.keys(r.unified).length) out.unified = { ...(out.unified ?? {}), ...r.unified };
  if (r.pids) unsupported.push('pids limit');
  if (r.blockio_class || r.rdt_class) unsupported.push('blockio and RDT classes');
  if (r.devices?.length) unsupported.push('device cgroup rules');
  return { resources: out, unsupported };
}
