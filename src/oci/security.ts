// Capabilities, masked and read-only paths, and the seccomp and AppArmor
// choices of a container, with containerd's defaults.
import { SpecError } from './errors.ts';
import { quote } from '../errors.ts';

export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const ALL_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function normalizeCap(name: string): string {
  const upper = name.toUpperCase();
  const cap = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (upper !== 'ALL' && !ALL_CAPABILITIES.includes(cap)) throw new SpecError(`unknown capability ${quote(name)}`);
  return upper === 'ALL' ? 'ALL' : cap;
}

/**
 * The capability set: defaults, minus drops, plus adds; ALL works on either
 * side. "All" (privileged, or ALL added) means every capability the daemon
 * itself may pass on, as containerd does: asking runc for one outside its
 * bounding set fails the container.
 */
export function capabilities(add: string[] = [], drop: string[] = [], privileged = false, available: readonly string[] = ALL_CAPABILITIES): string[] {
  const all = ALL_CAPABILITIES.filter((c) => available.includes(c));
  if (privileged) return all;
  const adds = add.map(normalizeCap);
  const drops = drop.map(normalizeCap);
  const unique = (list: string[]) => [...new Set(list)].filter((c) => c !== 'ALL');
  // Dropping ALL keeps exactly what is added; otherwise drops win over the defaults and adds.
  if (drops.includes('ALL')) return adds.includes('ALL') ? all : unique(adds);
  const caps = adds.includes('ALL') ? all : unique([...DEFAULT_CAPABILITIES, ...adds]);
  return caps.filter((c) => !drops.includes(c));
}

/** Capability names from a /proc/<pid>/status mask such as CapBnd (hex). */
export function capabilitiesInMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

export interface ProfileChoice {
  kind: 'runtime-default' | 'unconfined' | 'localhost';
  ref?: string;
}

/** The seccomp choice from the SecurityProfile or the deprecated path field. */
export function seccompChoice(profile: { profile_type?: string; localhost_ref?: string } | null | undefined, deprecated = ''): ProfileChoice {
  if (profile) {
    if (profile.profile_type === 'Localhost') {
      if (!profile.localhost_ref) throw new SpecError('seccomp profile type Localhost needs localhost_ref');
      return { kind: 'localhost', ref: profile.localhost_ref };
    }
    return { kind: profile.profile_type === 'Unconfined' ? 'unconfined' : 'runtime-default' };
  }
  if (deprecated === 'runtime/default' || deprecated === 'docker/default') return { kind: 'runtime-default' };
  if (deprecated.startsWith('localhost/')) return { kind: 'localhost', ref: deprecated.slice('localhost/'.length) };
  if (deprecated === '' || deprecated === 'unconfined') return { kind: 'unconfined' };
  throw new SpecError(`seccomp_profile_path ${quote(deprecated)} is not one of "", "unconfined", "runtime/default", "docker/default" or "localhost/<path>"`);
}

/** The AppArmor profile name for the OCI spec; undefined means none. */
export function apparmorProfile(
  profile: { profile_type?: string; localhost_ref?: string } | null | undefined,
  deprecated: string,
  hostHasAppArmor: boolean,
  defaultProfile: string,
): string | undefined {
  let wanted: string | undefined;
  if (profile) {
    if (profile.profile_type === 'Localhost') wanted = profile.localhost_ref?.replace(/^localhost\//, '');
    else if (profile.profile_type === 'RuntimeDefault') wanted = defaultProfile || 'tscri-default';
  } else if (deprecated === 'runtime/default') {
    wanted = defaultProfile || 'tscri-default';
  } else if (deprecated.startsWith('localhost/')) {
    wanted = deprecated.slice('localhost/'.length);
  }
  if (!wanted || wanted === 'unconfined') return undefined;
  if (!hostHasAppArmor) {
    // RuntimeDefault on a host without AppArmor means no profile, as in containerd; a named profile cannot be honoured.
    if (profile?.profile_type === 'RuntimeDefault' || deprecated === 'runtime/default') return undefined;
    throw new SpecError(`AppArmor profile ${quote(wanted)} was asked for, but AppArmor is not enabled on this node`);
  }
  return wanted;
}
