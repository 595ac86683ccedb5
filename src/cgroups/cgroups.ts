// Pod and container cgroups: naming for the cgroupfs and systemd drivers
// (slice expansion as runc does it), creating a pod cgroup in every mounted
// hierarchy (cgroup v1, hybrid, or v2), writing resource limits, placing a
// process, and removing a cgroup tree.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import { quote } from '../errors.ts';

export type CgroupDriver = 'cgroupfs' | 'systemd';
export type CgroupVersion = 'v1' | 'v2';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** v2 when /sys/fs/cgroup is the unified hierarchy; v1 for legacy and hybrid hosts. */
export function cgroupVersion(): CgroupVersion {
  return existsSync(join(CGROUP_ROOT, 'cgroup.controllers')) ? 'v2' : 'v1';
}

/**
 * Expands a systemd slice name into its cgroup path, as systemd and runc do:
 * "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root.
 */
export function expandSlice(slice: string): string {
  const suffix = '.slice';
  if (!slice.endsWith(suffix) || slice.includes('/')) throw new Error(`invalid systemd slice name ${quote(slice)}: it must end in .slice and contain no /`);
  const name = slice.slice(0, -suffix.length);
  if (name === '-') return '/';
  if (!name || name.startsWith('-') || name.endsWith('-') || name.includes('--')) {
    throw new Error(`invalid systemd slice name ${quote(slice)}: dashes separate non-empty parent names`);
  }
  let path = '';
  let prefix = '';
  for (const part of name.split('-')) {
    prefix = prefix ? `${prefix}-${part}` : part;
    path += `/${prefix}${suffix}`;
  }
  return path;
}

/** Rejects cgroup paths that could escape the cgroup hierarchy. */
export function assertSafeCgroupPath(path: string): void {
  if (!path.startsWith('/') || path.split('/').some((p) => p === '..' || p === '.') || path.includes('\0')) {
    throw new Error(`invalid cgroup path ${quote(path)}: it must be absolute without . or .. components`);
  }
}

/**
 * The pod's cgroup as the driver names it: a cgroupfs path (/parent/pod-<id>
 * when the pod names no parent, else the pod's own cgroup_parent, which
 * kubelet makes the pod's cgroup) or a systemd slice name.
 */
export function podCgroupPath(cgroupParent: string, sandboxId: string, driver: CgroupDriver, defaultParent: string): string {
  if (driver === 'systemd') {
    if (cgroupParent) {
      if (expandSlice(cgroupParent) === '/') throw new Error(`cgroup_parent ${cgroupParent} is the root cgroup; a pod needs a cgroup of its own`);
      return cgroupParent;
    }
    const base = defaultParent.endsWith('.slice') ? defaultParent.slice(0, -'.slice'.length) : defaultParent.split('/').filter(Boolean).join('_') || 'tscri';
    const slice = `${base}-pod${sandboxId}.slice`;
    expandSlice(slice);
    return slice;
  }
  if (cgroupParent) {
    if (cgroupParent.endsWith('.slice') && !cgroupParent.includes('/')) {
      throw new Error(`cgroup_parent ${cgroupParent} is a systemd slice but cgroup_driver is cgroupfs; set cgroup_driver = "systemd" to match kubelet`);
    }
    assertSafeCgroupPath(cgroupParent);
    const path = cgroupParent.replace(/\/{2,}/g, '/').replace(/\/+$/, '');
    if (!path) throw new Error(`cgroup_parent ${quote(cgroupParent)} is the root cgroup; a pod needs a cgroup of its own`);
    return path;
  }
  const parent = defaultParent.replace(/\/+$/, '');
  assertSafeCgroupPath(parent || '/');
  return `${parent}/pod-${sandboxId}`;
}

/** The filesystem path (relative to a hierarchy's mount) of a cgroup named for a driver. */
export function cgroupFsPath(name: string, driver?: CgroupDriver): string {
  if (driver === 'systemd' || (driver === undefined && name.endsWith('.slice') && !name.includes('/'))) return expandSlice(name);
  if (driver === undefined && /^[^/:]+\.slice:[^:]*:[^:]+$/.test(name)) {
    const [slice, prefix, id] = name.split(':');
    return `${expandSlice(slice!)}/${prefix ? `${prefix}-` : ''}${id}.scope`;
  }
  assertSafeCgroupPath(name);
  return name;
}

/** The OCI linux.cgroupsPath of a container in a pod. */
export function containerCgroupsPath(sandbox: { cgroupParent: string }, containerId: string, driver: CgroupDriver): string {
  if (driver === 'systemd') return `${sandbox.cgroupParent}:tscri:${containerId}`;
  return `${sandbox.cgroupParent.replace(/\/+$/, '')}/ctr-${containerId}`;
}

/** Mounted cgroup hierarchies: each mount point, its version and controllers. */
export interface Hierarchy {
  mount: string;
  version: CgroupVersion;
  controllers: string[];
}

export function hierarchies(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Hierarchy[] {
  const found: Hierarchy[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const [fstype, , superOptions = ''] = post.split(' ');
    const mount = pre?.split(' ')[4];
    if (!mount?.startsWith(CGROUP_ROOT)) continue;
    if (fstype === 'cgroup2') found.push({ mount, version: 'v2', controllers: [] });
    if (fstype === 'cgroup') {
      const options = new Set(['rw', 'ro', 'xattr', 'clone_children', 'noprefix', 'cpuset_v2_mode']);
      const controllers = superOptions.split(',').filter((o) => !options.has(o) && !o.startsWith('release_agent'));
      found.push({ mount, version: 'v1', controllers });
    }
  }
  return found;
}

/**
 * Whether containers can be given hugetlb limits: on cgroup v1 and hybrid
 * hosts (where runc uses only the v1 hierarchies) a v1 hierarchy must hold the
 * hugetlb controller; on v2 hosts the root must offer it.
 */
export function hugetlbControllerAvailable(all: Hierarchy[] = hierarchies(), v2RootControllers?: string): boolean {
  const v1 = all.filter((h) => h.version === 'v1');
  if (v1.length) return v1.some((h) => h.controllers.includes('hugetlb'));
  if (!all.some((h) => h.version === 'v2' && h.mount === CGROUP_ROOT)) return false;
  const controllers =
    v2RootControllers ??
    (() => {
      try {
        return readFileSync(join(CGROUP_ROOT, 'cgroup.controllers'), 'utf8');
      } catch {
        return '';
      }
    })();
  return controllers.split(/\s+/).includes('hugetlb');
}

/**
 * The huge page sizes the kernel offers, named as runc and kubelet name them
 * ("2MB", "1GB"), from /sys/kernel/mm/hugepages/hugepages-<n>kB.
 */
export function hugePageSizes(entries?: string[]): string[] {
  let names = entries;
  if (!names) {
    try {
      names = readdirSync('/sys/kernel/mm/hugepages');
    } catch {
      names = [];
    }
  }
  const sizes: string[] = [];
  for (const name of names) {
    const m = /^hugepages-(\d+)kB$/.exec(name);
    if (!m) continue;
    let value = Number(m[1]);
    const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    sizes.push(`${value}${units[unit]}`);
  }
  return sizes;
}

/**
 * The directories making up one cgroup: one per v1 hierarchy on v1/hybrid
 * hosts (the hybrid unified mount holds no controllers and is left alone),
 * the single unified directory on v2 hosts.
 */
export function cgroupDirs(fsPath: string): string[] {
  assertSafeCgroupPath(fsPath);
  const all = hierarchies();
  const v1 = all.filter((h) => h.version === 'v1');
  const chosen = v1.length ? v1 : all.filter((h) => h.version === 'v2' && h.mount === CGROUP_ROOT);
  return chosen.map((h) => join(h.mount, fsPath));
}

/**
 * Creates a cgroup in every hierarchy (cpusets are seeded from the parent, as
 * v1 requires). Returns whether the cgroup itself was made here, rather than
 * found (in any hierarchy).
 */
export async function createCgroup(fsPath: string): Promise<boolean> {
  let made = false;
  for (const dir of cgroupDirs(fsPath)) {
    const mount = dir.slice(0, dir.length - fsPath.length);
    const v2 = cgroupVersion() === 'v2';
    const parts = fsPath.split('/').filter(Boolean);
    let current = mount;
    for (const part of parts) {
      const parent = current;
      if (v2) await enableV2Controllers(parent);
      current = join(current, part);
      const created = await mkdir(current).then(
        () => true,
        (err) => {
          if (err.code === 'EEXIST') return false;
          throw err;
        },
      );
      if (created && current === dir) made = true;
      // A v1 cpuset starts empty and takes no process until seeded from its parent.
      // Also when found: a cgroup another caller just made may not be seeded yet.
      if (existsSync(join(current, 'cpuset.cpus')) && !existsSync(join(current, 'cgroup.controllers'))) {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if ((await readFile(join(current, file), 'utf8')).trim()) continue;
          const value = (await readFile(join(parent, file), 'utf8')).trim();
          await writeFile(join(current, file), value);
        }
      }
    }
  }
  return made;
}

/** Makes every controller a v2 cgroup has available to its children. */
async function enableV2Controllers(dir: string): Promise<void> {
  const available = (await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
  for (const c of available) {
    await writeFile(join(dir, 'cgroup.subtree_control'), `+${c}`).catch(() => undefined);
  }
}

/**
 * SIGKILLs every process of a cgroup (in every hierarchy) and waits, briefly,
 * until it is empty. For cgroups that hold only what tscri put there.
 */
export async function killCgroupProcesses(fsPath: string): Promise<void> {
  const pids = async () => {
    const found = new Set<number>();
    for (const dir of cgroupDirs(fsPath)) {
      const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (/^\d+$/.test(line)) found.add(Number(line));
    }
    return found;
  };
  for (let attempt = 0; attempt < 100; attempt++) {
    const left = await pids();
    if (!left.size) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`processes of cgroup ${fsPath} did not exit after SIGKILL`);
}

/** Moves a process into a cgroup in every hierarchy. */
export async function addProcess(fsPath: string, pid: number): Promise<void> {
  for (const dir of cgroupDirs(fsPath)) await appendFile(join(dir, 'cgroup.procs'), `${pid}\n`);
}

/**
 * A hugepage size as cgroup file names carry it ("2MB", "1GB"), from the
 * names Kubernetes sends ("2Mi", "2MB", "1G"); anything else is refused.
 */
export function hugepageSizeName(size: string): string {
  const m = /^([1-9][0-9]{0,5})([KMG])(?:i|iB|B)?$/i.exec(String(size));
  if (!m) throw new Error(`invalid hugepage size ${quote(String(size).slice(0, 64))}: expected a size such as 2MB or 1GB`);
  return `${m[1]}${m[2]!.toUpperCase()}B`;
}

/** Whether a name is one file of a cgroup directory ("memory.max"): no path, no dot-files. */
export function isCgroupFileName(name: string): boolean {
  return /^[a-z][a-z0-9_]*(\.[A-Za-z0-9_]+)+$/.test(name);
}

/** Resource settings as cgroup files for one version; pure, so it can be checked without root. */
export function resourceFiles(r: Partial<LinuxContainerResources__Output>, version: CgroupVersion): Array<[string, string]> {
  const files: Array<[string, string]> = [];
  const shares = r.cpu_shares ?? 0;
  const period = r.cpu_period ?? 0;
  const quota = r.cpu_quota ?? 0;
  const memory = r.memory_limit_in_bytes ?? 0;
  const swap = r.memory_swap_limit_in_bytes ?? 0;
  if (version === 'v1') {
    if (shares > 0) files.push(['cpu.shares', String(shares)]);
    if (period > 0) files.push(['cpu.cfs_period_us', String(period)]);
    if (quota !== 0) files.push(['cpu.cfs_quota_us', String(quota)]);
    if (memory > 0) files.push(['memory.limit_in_bytes', String(memory)]);
    if (swap > 0) files.push(['memory.memsw.limit_in_bytes', String(swap)]);
    if (r.cpuset_cpus) files.push(['cpuset.cpus', r.cpuset_cpus]);
    if (r.cpuset_mems) files.push(['cpuset.mems', r.cpuset_mems]);
    for (const h of r.hugepage_limits ?? []) files.push([`hugetlb.${hugepageSizeName(h.page_size)}.limit_in_bytes`, String(h.limit)]);
  } else {
    // The shares→weight mapping runc uses, so a pod's weight matches its containers'.
    if (shares > 0) files.push(['cpu.weight', String(Math.floor(1 + ((Math.max(2, Math.min(shares, 262144)) - 2) * 9999) / 262142))]);
    if (quota !== 0 || period > 0) files.push(['cpu.max', `${quota > 0 ? quota : 'max'} ${period > 0 ? period : 100000}`]);
    if (memory > 0) files.push(['memory.max', String(memory)]);
    if (swap > 0 && memory > 0) files.push(['memory.swap.max', String(Math.max(0, swap - memory))]);
    if (r.cpuset_cpus) files.push(['cpuset.cpus', r.cpuset_cpus]);
    if (r.cpuset_mems) files.push(['cpuset.mems', r.cpuset_mems]);
    for (const h of r.hugepage_limits ?? []) files.push([`hugetlb.${hugepageSizeName(h.page_size)}.max`, String(h.limit)]);
  }
  for (const [key, value] of Object.entries(r.unified ?? {})) {
    if (!isCgroupFileName(key)) throw new Error(`invalid unified cgroup key ${quote(key.slice(0, 64))}`);
    if (version === 'v2') files.push([key, value]);
  }
  return files;
}

/** Refuses resources that cannot be written as cgroup files on either version (hugepage sizes, unified keys). */
export function checkResources(
  r: Partial<LinuxContainerResources__Output> | null | undefined,
  online: { cpus?: string; mems?: string } = onlineCpusAndMems(),
): void {
  if (!r) return;
  for (const key of ['cpu_shares', 'cpu_period', 'memory_limit_in_bytes'] as const) {
    if (Number(r[key] ?? 0) < 0) throw new Error(`${key} ${r[key]} is negative; 0 means no limit`);
  }
  if (Number(r.memory_swap_limit_in_bytes ?? 0) < -1)
    throw new Error(`memory_swap_limit_in_bytes ${r.memory_swap_limit_in_bytes} is invalid: -1 (unlimited), 0 (not set) or a byte count`);
  for (const [key, list, have] of [
    ['cpuset_cpus', r.cpuset_cpus, online.cpus],
    ['cpuset_mems', r.cpuset_mems, online.mems],
  ] as const) {
    if (!list) continue;
    const wanted = parseCpuList(list);
    if (!wanted) throw new Error(`${key} ${JSON.stringify(list.slice(0, 64))} is not a list such as 0-3,5`);
    const present = have ? parseCpuList(have) : undefined;
    const missing = present ? [...wanted].filter((n) => !present.has(n)) : [];
    if (missing.length)
      throw new Error(
        `${key} ${JSON.stringify(list.slice(0, 64))} names ${key === 'cpuset_cpus' ? 'CPUs' : 'memory nodes'} this node does not have (${missing.slice(0, 8).join(', ')}); it has ${have!.trim()}`,
      );
  }
  resourceFiles(r, 'v1');
  resourceFiles(r, 'v2');
}

/** A kernel CPU or node list ("0-3,5") as a set, or undefined when it is not one. */
export function parseCpuList(list: string): Set<number> | undefined {
  const out = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return undefined;
    for (let n = from; n <= to && out.size <= 65536; n++) out.add(n);
  }
  return out;
}

/** The node's online CPUs and memory nodes, as the kernel lists them. */
function onlineCpusAndMems(): { cpus?: string; mems?: string } {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  };
  return { cpus: read('/sys/devices/system/cpu/online'), mems: read('/sys/devices/system/node/online') };
}

/** A pod's total: its containers' resources plus the sandbox overhead, without `unified`. */
export function podResources(
  resources: LinuxContainerResources__Output | null,
  overhead: LinuxContainerResources__Output | null,
): Partial<LinuxContainerResources__Output> {
  const r = resources ?? ({} as Partial<LinuxContainerResources__Output>);
  const o = overhead ?? ({} as Partial<LinuxContainerResources__Output>);
  // `unified` is per container: kubelet's memory.oom.group on a pod cgroup would
  // make one container's OOM kill every container of the pod.
  const { unified: _unified, ...rest } = r;
  const sum: Partial<LinuxContainerResources__Output> = { ...rest };
  if ((r.memory_limit_in_bytes ?? 0) > 0) sum.memory_limit_in_bytes = r.memory_limit_in_bytes! + Math.max(0, o.memory_limit_in_bytes ?? 0);
  if ((r.cpu_shares ?? 0) > 0 || (o.cpu_shares ?? 0) > 0) sum.cpu_shares = (r.cpu_shares ?? 0) + (o.cpu_shares ?? 0);
  if ((r.cpu_quota ?? 0) > 0) {
    const period = (r.cpu_period ?? 0) > 0 ? r.cpu_period! : 100000;
    const extra = (o.cpu_quota ?? 0) > 0 ? Math.round((o.cpu_quota! * period) / ((o.cpu_period ?? 0) > 0 ? o.cpu_period! : 100000)) : 0;
    sum.cpu_quota = r.cpu_quota! + extra;
    sum.cpu_period = period;
  }
  return sum;
}

/** Writes resource limits to a cgroup in every hierarchy that has the file. */
export async function writeResources(fsPath: string, resources: Partial<LinuxContainerResources__Output>): Promise<void> {
  const version = cgroupVersion();
  const files = resourceFiles(resources, version);
  if (!files.length) return;
  const bad = files.find(([file]) => !isCgroupFileName(file));
  if (bad) throw new Error(`refusing to write ${quote(bad[0].slice(0, 64))}: not a cgroup file name`);
  for (const dir of cgroupDirs(fsPath)) {
    for (const [file, value] of files) {
      const target = join(dir, file);
      if (!existsSync(target)) continue;
      try {
        await writeFile(target, value);
      } catch (err) {
        throw new Error(`cannot set ${file} = ${value} in ${dir}: ${(err as Error).message}`);
      }
    }
  }
}

/** Removes a cgroup (a path, a slice name, or an OCI systemd path) and everything under it; a missing one is fine. */
export async function removeCgroup(path: string): Promise<void> {
  const fsPath = cgroupFsPath(path);
  if (fsPath === '/') throw new Error('refusing to remove the root cgroup');
  const errors: string[] = [];
  for (const dir of cgroupDirsWithHybrid(fsPath)) {
    if (!existsSync(dir)) continue;
    try {
      await removeTree(dir);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) throw new Error(`cannot remove cgroup ${path}: ${errors.join('; ')}`);
}

/** On hybrid hosts runc also makes each path in the unified mount: those directories count too. */
function cgroupDirsWithHybrid(fsPath: string): string[] {
  const hybridUnified = hierarchies()
    .filter((h) => h.version === 'v2' && h.mount !== CGROUP_ROOT)
    .map((h) => join(h.mount, fsPath));
  return [...cgroupDirs(fsPath), ...hybridUnified];
}

/**
 * Removes a cgroup that others may still use, such as a pod cgroup shared by
 * several attempts of one pod: in each hierarchy it goes only when it holds no
 * child cgroups and no processes. Never waits on a busy one; returns whether
 * it is gone everywhere.
 */
export async function removeCgroupIfUnused(path: string): Promise<boolean> {
  const fsPath = cgroupFsPath(path);
  if (fsPath === '/') throw new Error('refusing to remove the root cgroup');
  let gone = true;
  for (const dir of cgroupDirsWithHybrid(fsPath)) {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (!entries) continue;
    const procs = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).trim();
    if (entries.some((e) => e.isDirectory()) || procs) {
      gone = false;
      continue;
    }
    // A process that just exited can keep an empty cgroup busy for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (caught) {
        const err = caught as NodeJS.ErrnoException;
        if (err.code === 'ENOENT') break;
        if ((err.code !== 'EBUSY' && err.code !== 'ENOTEMPTY') || attempt >= 10) {
          gone = false;
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
  return gone;
}

async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!entries) return;
  for (const entry of entries) if (entry.isDirectory()) await removeTree(join(dir, entry.name));
  // A cgroup whose last process just exited may stay busy for a moment.
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (caught) {
      const err = caught as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return;
      if (err.code !== 'EBUSY' || attempt >= 50) throw new Error(`rmdir ${dir}: ${err.message}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Whether a cgroup directory exists in the first hierarchy. */
export async function cgroupExists(path: string): Promise<boolean> {
  const dirs = cgroupDirs(cgroupFsPath(path));
  const first = dirs[0];
  return (
    first !== undefined &&
    (await stat(first).then(
      () => true,
      () => false,
    ))
  );
}
