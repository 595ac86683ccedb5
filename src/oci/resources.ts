// CRI LinuxContainerResources to OCI linux.resources (and back, for
// ContainerStatus). Swap follows kubelet: memory_swap_limit_in_bytes is the
// OCI memory.swap (memory + swap, as cgroup v1 counts it; runc converts it
// to memory.swap.max on v2), and `unified` keys such as memory.swap.max pass
// straight to cgroup v2, where they win over the converted values.
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { LinuxContainerResources } from '../generated/runtime/v1/LinuxContainerResources.ts';
import { SpecError } from './errors.ts';
import { hugepageSizeName } from '../cgroups/cgroups.ts';
import { quote } from '../errors.ts';

export interface OciResources {
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; swap?: number };
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  unified?: Record<string, string>;
  devices?: Array<{ allow: boolean; access?: string; type?: string; major?: number; minor?: number }>;
}

/** cgroup v2 cpu.weight for v1 cpu.shares, as runc converts it. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** Kubernetes hugepage size names ("2MB", "1GB") as the OCI spec wants them. */
function pageSize(size: string): string {
  try {
    return hugepageSizeName(size);
  } catch (err) {
    throw new SpecError((err as Error).message);
  }
}

/** What the node offers for hugepage limits; without it, limits pass through unchecked. */
export interface HugetlbSupport {
  /** Whether the hugetlb controller is there for containers' cgroups. */
  controller: boolean;
  /** The page sizes the kernel has ("2MB", "1GB"); empty means unknown. */
  pageSizes: string[];
}

/**
 * The hugepage limits runc gets. kubelet sends one for every page size of the
 * node, 0 when the pod asks for none. Where the hugetlb controller is missing
 * (a hybrid host's hugetlb lives in the unified hierarchy, which runc does not
 * use for limits) they are dropped, as containerd does, since runc would fail
 * the container. A size the kernel does not have is refused when it asks for
 * pages and dropped when its limit is 0.
 */
function hugepageLimits(limits: Array<{ page_size: string; limit: number }>, support: HugetlbSupport | undefined): OciResources['hugepageLimits'] {
  const out = limits.map((h) => ({ pageSize: pageSize(h.page_size), limit: h.limit }));
  if (!support) return out;
  if (!support.controller) return [];
  if (!support.pageSizes.length) return out;
  return out.filter((h) => {
    if (support.pageSizes.includes(h.pageSize)) return true;
    if (h.limit > 0) throw new SpecError(`hugepage size ${h.pageSize} is not offered by this node's kernel (it has ${support.pageSizes.join(', ')})`);
    return false;
  });
}

export function resourcesToOci(r: LinuxContainerResources__Output | null | undefined, cgroupVersion: 'v1' | 'v2', hugetlb?: HugetlbSupport): OciResources {
  const out: OciResources = {};
  if (!r) return out;
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (r.cpu_shares) cpu.shares = r.cpu_shares;
  if (r.cpu_quota) cpu.quota = r.cpu_quota;
  if (r.cpu_period) cpu.period = r.cpu_period;
  if (r.cpuset_cpus) cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems) cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  const memory: NonNullable<OciResources['memory']> = {};
  if (r.memory_limit_in_bytes) memory.limit = r.memory_limit_in_bytes;
  if (r.memory_swap_limit_in_bytes) {
    if (r.memory_limit_in_bytes && r.memory_swap_limit_in_bytes > 0 && r.memory_swap_limit_in_bytes < r.memory_limit_in_bytes) {
      throw new SpecError(
        `memory_swap_limit_in_bytes (${r.memory_swap_limit_in_bytes}) counts memory plus swap and cannot be below memory_limit_in_bytes (${r.memory_limit_in_bytes})`,
      );
    }
    memory.swap = r.memory_swap_limit_in_bytes;
  }
  if (Object.keys(memory).length) out.memory = memory;
  if (r.hugepage_limits?.length) {
    const limits = hugepageLimits(r.hugepage_limits, hugetlb);
    if (limits?.length) out.hugepageLimits = limits;
  }
  const unified = Object.entries(r.unified ?? {});
  if (unified.length) {
    if (cgroupVersion !== 'v2')
      throw new SpecError(`unified cgroup settings (${unified.map(([k]) => k).join(', ')}) need a cgroup v2 host; this node uses cgroup v1`);
    for (const [key] of unified) if (!/^[a-z_]+\.[a-z0-9_.]+$/.test(key)) throw new SpecError(`invalid unified cgroup key ${quote(key)}`);
    out.unified = Object.fromEntries(unified);
  }
  return out;
}

/** The resources reported in ContainerStatus: what was asked for. */
export function ociToCriResources(r: LinuxContainerResources__Output | null | undefined): LinuxContainerResources | null {
  if (!r) return null;
  return {
    cpu_period: r.cpu_period,
    cpu_quota: r.cpu_quota,
    cpu_shares: r.cpu_shares,
    memory_limit_in_bytes: r.memory_limit_in_bytes,
    oom_score_adj: r.oom_score_adj,
    cpuset_cpus: r.cpuset_cpus,
    cpuset_mems: r.cpuset_mems,
    hugepage_limits: r.hugepage_limits,
    unified: r.unified,
    memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
  };
}

/**
 * The resources a container has after UpdateContainerResources: fields the
 * update leaves at zero or empty keep their value (as containerd and runc
 * treat them), unified keys are merged.
 */
export function mergeResources(current: LinuxContainerResources | null | undefined, update: LinuxContainerResources__Output): LinuxContainerResources {
  const merged: LinuxContainerResources = { ...(current ?? {}) };
  const scalars = [
    'cpu_period',
    'cpu_quota',
    'cpu_shares',
    'memory_limit_in_bytes',
    'oom_score_adj',
    'cpuset_cpus',
    'cpuset_mems',
    'memory_swap_limit_in_bytes',
  ] as const;
  for (const key of scalars) {
    const value = update[key];
    if (value) (merged as Record<string, unknown>)[key] = value;
  }
  if (update.hugepage_limits?.length) merged.hugepage_limits = update.hugepage_limits;
  if (Object.keys(update.unified ?? {}).length) merged.unified = { ...(current?.unified ?? {}), ...update.unified };
  return merged;
}
