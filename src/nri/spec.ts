// Applying the adjustments NRI plugins made to a container being created to
// its OCI spec: annotations, mounts, environment, args, hooks, devices, cgroup
// resources, rlimits, OOM score, sysctls, namespaces, seccomp policy and the
// cgroups path. Adjustments this runtime cannot honour are refused by name
// rather than dropped, so a plugin never believes something was applied.
import { NriError } from './errors.ts';
import { isMarkedForRemoval, unmarked } from './merge.ts';
import type { ContainerAdjustment, Hook, LinuxResources } from './types.ts';
import type { Device as OciDevice, Hook as OciHook, HookKind as OciHookKind } from '../oci/types.ts';
import { quote } from '../errors.ts';

/** The parts of an OCI spec that adjustments touch. */
export interface AdjustableSpec {
  annotations?: Record<string, string>;
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
  hooks?: Partial<Record<OciHookKind, OciHook[]>>;
  process?: {
    args?: string[];
    env?: string[];
    rlimits?: { type: string; hard: number; soft: number }[];
    oomScoreAdj?: number;
  };
  linux?: {
    cgroupsPath?: string;
    sysctl?: Record<string, string>;
    namespaces?: { type: string; path?: string }[];
    devices?: OciDevice[];
    seccomp?: object;
    resources?: OciResources;
  };
}

interface OciResources {
  memory?: Record<string, number | boolean>;
  cpu?: Record<string, number | string>;
  pids?: { limit: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  unified?: Record<string, string>;
  devices?: { allow: boolean; type?: string; major?: number; minor?: number; access?: string }[];
}

export interface ApplyOptions {
  /** Makes an oom_score_adj the daemon may set (see [pod] restrict_oom_score_adj). */
  clampOomScoreAdj(value: number): number;
}

const HOOK_KINDS: [keyof NonNullable<ContainerAdjustment['hooks']>, OciHookKind][] = [
  ['prestart', 'prestart'],
  ['create_runtime', 'createRuntime'],
  ['create_container', 'createContainer'],
  ['start_container', 'startContainer'],
  ['poststart', 'poststart'],
  ['poststop', 'poststop'],
];

const MEMORY_FIELDS: [string, string][] = [
  ['limit', 'limit'],
  ['reservation', 'reservation'],
  ['swap', 'swap'],
  ['kernel', 'kernel'],
  ['kernel_tcp', 'kernelTCP'],
  ['swappiness', 'swappiness'],
  ['disable_oom_killer', 'disableOOMKiller'],
  ['use_hierarchy', 'useHierarchy'],
];

const CPU_FIELDS: [string, string][] = [
  ['shares', 'shares'],
  ['quota', 'quota'],
  ['period', 'period'],
  ['realtime_runtime', 'realtimeRuntime'],
  ['realtime_period', 'realtimePeriod'],
];

/** Plugins may not touch these: the runtime has no way to carry them out. */
function refuseUnsupported(a: ContainerAdjustment): void {
  const l = a.linux;
  const unsupported: string[] = [];
  if (l?.io_priority) unsupported.push('I/O priority');
  if (l?.scheduler) unsupported.push('scheduling policy');
  if (l?.rdt && (l.rdt.clos_id || l.rdt.schemata || l.rdt.enable_monitoring)) unsupported.push('RDT');
  if (l?.memory_policy) unsupported.push('memory policy');
  if (l?.net_devices && Object.keys(l.net_devices).length > 0) unsupported.push('network devices');
  if (l?.resources?.blockio_class || l?.resources?.rdt_class) unsupported.push('blockio and RDT classes');
  if ((a.CDI_devices ?? []).length > 0) unsupported.push('CDI devices');
  if (unsupported.length > 0) throw new NriError('invalid-adjustment', `NRI plugins asked for ${unsupported.join(', ')}, which tscri does not support`);
}

/** Applies merged NRI adjustments to spec in place. */
export function applyAdjustment(spec: AdjustableSpec, a: ContainerAdjustment, options: ApplyOptions): void {
  refuseUnsupported(a);
  const process = (spec.process ??= {});
  const linux = (spec.linux ??= {});

  for (const [key, value] of Object.entries(a.annotations ?? {})) {
    spec.annotations ??= {};
    if (isMarkedForRemoval(key)) delete spec.annotations[unmarked(key)];
    else spec.annotations[key] = value;
  }

  for (const m of a.mounts ?? []) {
    const destination = unmarked(m.destination ?? '');
    if (!destination.startsWith('/')) throw new NriError('invalid-adjustment', `an NRI plugin added a mount with a relative destination ${quote(destination)}`);
    spec.mounts = (spec.mounts ?? []).filter((existing) => existing.destination !== destination);
    if (!isMarkedForRemoval(m.destination ?? '')) spec.mounts.push({ destination, type: m.type || 'bind', source: m.source ?? '', options: m.options ?? [] });
  }

  for (const e of a.env ?? []) {
    const name = unmarked(e.key ?? '');
    if (!name || name.includes('=')) throw new NriError('invalid-adjustment', `an NRI plugin set an environment variable with the invalid name ${quote(name)}`);
    process.env = (process.env ?? []).filter((v) => v.split('=', 1)[0] !== name);
    if (!isMarkedForRemoval(e.key ?? '')) process.env.push(`${name}=${e.value ?? ''}`);
  }

  if (a.args && a.args.length > 0) process.args = [...a.args];

  for (const [from, to] of HOOK_KINDS) {
    const hooks = a.hooks?.[from] ?? [];
    if (hooks.length === 0) continue;
    spec.hooks ??= {};
    spec.hooks[to] = [...(spec.hooks[to] ?? []), ...hooks.map(ociHook)];
  }

  for (const limit of a.rlimits ?? []) {
    const type = limit.type ?? '';
    if (!/^RLIMIT_[A-Z]+$/.test(type)) throw new NriError('invalid-adjustment', `an NRI plugin set an unknown rlimit ${quote(type)}`);
    process.rlimits = [...(process.rlimits ?? []).filter((r) => r.type !== type), { type, hard: rlimitValue(limit.hard), soft: rlimitValue(limit.soft) }];
  }

  const l = a.linux;
  if (!l) return;
  if (l.oom_score_adj) process.oomScoreAdj = options.clampOomScoreAdj(Number(l.oom_score_adj.value ?? 0));
  if (l.cgroups_path) linux.cgroupsPath = l.cgroups_path;
  for (const [key, value] of Object.entries(l.sysctl ?? {})) {
    linux.sysctl ??= {};
    if (isMarkedForRemoval(key)) delete linux.sysctl[unmarked(key)];
    else linux.sysctl[key] = value;
  }
  for (const ns of l.namespaces ?? []) {
    const type = unmarked(ns.type ?? '');
    linux.namespaces = (linux.namespaces ?? []).filter((n) => n.type !== type);
    if (!isMarkedForRemoval(ns.type ?? '')) linux.namespaces.push(ns.path ? { type, path: ns.path } : { type });
  }
  for (const d of l.devices ?? []) applyDevice(linux, d);
  if (l.resources) applyResources((linux.resources ??= {}), l.resources);
  if (l.seccomp_policy) linux.seccomp = ociSeccompPolicy(l.seccomp_policy);
}

function ociHook(h: Hook): OciHook {
  const hook: OciHook = { path: h.path ?? '' };
  if (!hook.path.startsWith('/')) throw new NriError('invalid-adjustment', `an NRI plugin added a hook with a relative path ${quote(hook.path)}`);
  if (h.args?.length) hook.args = [...h.args];
  if (h.env?.length) hook.env = [...h.env];
  if (h.timeout) hook.timeout = Number(h.timeout.value ?? 0);
  return hook;
}

/** RLIM_INFINITY does not survive as a number: the largest one JSON can carry exactly stands in. */
function rlimitValue(value: number | string | { toString(): string } | undefined): number {
  const n = Number(value ?? 0);
  return n >= 2 ** 63 ? Number.MAX_SAFE_INTEGER : n;
}

type NriDevice = NonNullable<NonNullable<ContainerAdjustment['linux']>['devices']>[number];

function applyDevice(linux: NonNullable<AdjustableSpec['linux']>, d: NriDevice): void {
  const path = unmarked(d.path ?? '');
  if (!path.startsWith('/dev/')) throw new NriError('invalid-adjustment', `an NRI plugin added a device outside /dev: ${quote(path)}`);
  const existing = (linux.devices ?? []).find((x) => x.path === path);
  linux.devices = (linux.devices ?? []).filter((x) => x.path !== path);
  const resources = (linux.resources ??= {});
  if (isMarkedForRemoval(d.path ?? '')) {
    if (existing)
      resources.devices = (resources.devices ?? []).filter(
        (r) => !(r.allow && r.type === existing.type && r.major === existing.major && r.minor === existing.minor),
      );
    return;
  }
  if (d.type !== 'c' && d.type !== 'b' && d.type !== 'p' && d.type !== 'u')
    throw new NriError('invalid-adjustment', `an NRI plugin added device ${path} of unknown type ${quote(d.type)}`);
  const device: OciDevice = { path, type: d.type, major: Number(d.major ?? 0), minor: Number(d.minor ?? 0) };
  if (d.file_mode) device.fileMode = d.file_mode.value ?? 0;
  if (d.uid) device.uid = d.uid.value ?? 0;
  if (d.gid) device.gid = d.gid.value ?? 0;
  linux.devices.push(device);
  // The device cgroup must let the container use it.
  resources.devices = [...(resources.devices ?? []), { allow: true, type: device.type, major: device.major, minor: device.minor, access: 'rwm' }];
}

function applyResources(target: OciResources, r: LinuxResources): void {
  const memory = r.memory as Record<string, { value?: unknown } | null | undefined> | null | undefined;
  for (const [from, to] of MEMORY_FIELDS) {
    const v = memory?.[from];
    if (v) (target.memory ??= {})[to] = typeof v.value === 'boolean' ? v.value : Number(v.value ?? 0);
  }
  const cpu = r.cpu as Record<string, { value?: unknown } | string | null | undefined> | null | undefined;
  for (const [from, to] of CPU_FIELDS) {
    const v = cpu?.[from] as { value?: unknown } | null | undefined;
    if (v) (target.cpu ??= {})[to] = Number(v.value ?? 0);
  }
  for (const field of ['cpus', 'mems'] as const) {
    const v = cpu?.[field] as string | undefined;
    if (v) (target.cpu ??= {})[field] = v;
  }
  if (r.pids) target.pids = { limit: Number(r.pids.limit ?? 0) };
  for (const h of r.hugepage_limits ?? []) {
    target.hugepageLimits = [
      ...(target.hugepageLimits ?? []).filter((x) => x.pageSize !== h.page_size),
      { pageSize: h.page_size ?? '', limit: Number(h.limit ?? 0) },
    ];
  }
  for (const [key, value] of Object.entries(r.unified ?? {})) (target.unified ??= {})[key] = value;
  for (const rule of r.devices ?? []) {
    const entry: NonNullable<OciResources['devices']>[number] = { allow: Boolean(rule.allow), access: rule.access || 'rwm' };
    if (rule.type) entry.type = rule.type;
    if (rule.major) entry.major = Number(rule.major.value ?? 0);
    if (rule.minor) entry.minor = Number(rule.minor.value ?? 0);
    target.devices = [...(target.devices ?? []), entry];
  }
}

type NriSeccomp = NonNullable<NonNullable<ContainerAdjustment['linux']>['seccomp_policy']>;

function ociSeccompPolicy(p: NriSeccomp): object {
  const policy: Record<string, unknown> = { defaultAction: p.default_action ?? '' };
  if (p.default_errno) policy.defaultErrnoRet = p.default_errno.value;
  if (p.architectures?.length) policy.architectures = [...p.architectures];
  if (p.flags?.length) policy.flags = [...p.flags];
  if (p.listener_path) policy.listenerPath = p.listener_path;
  if (p.listener_metadata) policy.listenerMetadata = p.listener_metadata;
  policy.syscalls = (p.syscalls ?? []).map((s) => {
    const syscall: Record<string, unknown> = { names: [...(s.names ?? [])], action: s.action ?? '' };
    if (s.errno_ret) syscall.errnoRet = s.errno_ret.value;
    if (s.args?.length)
      syscall.args = s.args.map((arg) => ({ index: arg.index, value: Number(arg.value ?? 0), valueTwo: Number(arg.value_two ?? 0), op: arg.op }));
    return syscall;
  });
  return policy;
}
