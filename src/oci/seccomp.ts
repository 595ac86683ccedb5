// Seccomp profiles to the OCI linux.seccomp object for one container. Three
// shapes are read: tscri's own (runtime/seccomp.json: architectures per
// arch, includesCaps/excludesCaps/arches on entries), the Docker/containerd
// format that Kubernetes Localhost profiles use (archMap, `name` or `names`,
// includes/excludes with caps and arches), and plain OCI. Entries are kept
// or dropped for the host architecture and the container's capabilities.

import type { Seccomp } from './types.ts';

interface Conditions {
  caps?: string[];
  arches?: string[];
}

interface ProfileSyscall {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  includesCaps?: string[];
  excludesCaps?: string[];
  arches?: string[];
  includes?: Conditions;
  excludes?: Conditions;
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: Record<string, string[]> | string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: ProfileSyscall[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'x86', arm: 'arm' };
const SCMP_ARCH: Record<string, string> = { amd64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64', x86: 'SCMP_ARCH_X86', arm: 'SCMP_ARCH_ARM' };

function architecturesFor(profile: SeccompProfile, arch: string): string[] {
  if (profile.archMap?.length) {
    const native = profile.archMap.find((a) => a.architecture === SCMP_ARCH[arch]);
    return native ? [native.architecture, ...(native.subArchitectures ?? [])] : [];
  }
  if (Array.isArray(profile.architectures)) return profile.architectures;
  return profile.architectures?.[arch] ?? [];
}

function applies(s: ProfileSyscall, caps: string[], arch: string): boolean {
  const includesCaps = [...(s.includesCaps ?? []), ...(s.includes?.caps ?? [])];
  const excludesCaps = [...(s.excludesCaps ?? []), ...(s.excludes?.caps ?? [])];
  const arches = s.arches ?? s.includes?.arches;
  if (!includesCaps.every((c) => caps.includes(c))) return false;
  if (excludesCaps.some((c) => caps.includes(c))) return false;
  if (arches?.length && !arches.includes(arch)) return false;
  if (s.excludes?.arches?.includes(arch)) return false;
  return true;
}

const isStrings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * What makes a parsed document unusable as a seccomp profile, or undefined
 * when it has the shape ociSeccomp reads. Says which field, never its value.
 */
export function seccompProfileProblem(p: unknown): string | undefined {
  if (!p || typeof p !== 'object' || Array.isArray(p)) return 'it is not a JSON object';
  const profile = p as Record<string, unknown>;
  if (typeof profile.defaultAction !== 'string') return 'defaultAction is missing or not a string';
  if (profile.architectures !== undefined && !isStrings(profile.architectures)) {
    const arches = profile.architectures;
    if (!arches || typeof arches !== 'object' || Array.isArray(arches) || !Object.values(arches).every(isStrings))
      return 'architectures is neither a list nor a map of lists of names';
  }
  if (
    profile.archMap !== undefined &&
    (!Array.isArray(profile.archMap) ||
      !profile.archMap.every(
        (a) => a && typeof a === 'object' && typeof a.architecture === 'string' && (a.subArchitectures === undefined || isStrings(a.subArchitectures)),
      ))
  ) {
    return 'archMap is not a list of architectures';
  }
  if (profile.flags !== undefined && !isStrings(profile.flags)) return 'flags is not a list of names';
  if (profile.syscalls === undefined) return undefined;
  if (!Array.isArray(profile.syscalls)) return 'syscalls is not a list';
  for (const [i, s] of profile.syscalls.entries()) {
    if (!s || typeof s !== 'object') return `syscalls[${i}] is not an object`;
    if (typeof s.action !== 'string') return `syscalls[${i}].action is missing or not a string`;
    if (s.name !== undefined && typeof s.name !== 'string') return `syscalls[${i}].name is not a string`;
    if (s.names !== undefined && !isStrings(s.names)) return `syscalls[${i}].names is not a list of names`;
    if (s.args !== undefined && !Array.isArray(s.args)) return `syscalls[${i}].args is not a list`;
    for (const key of ['includesCaps', 'excludesCaps', 'arches'] as const)
      if (s[key] !== undefined && !isStrings(s[key])) return `syscalls[${i}].${key} is not a list of names`;
    for (const key of ['includes', 'excludes'] as const) {
      const c = s[key];
      if (c === undefined) continue;
      if (!c || typeof c !== 'object' || (c.caps !== undefined && !isStrings(c.caps)) || (c.arches !== undefined && !isStrings(c.arches)))
        return `syscalls[${i}].${key} is not an object of caps and arches`;
    }
  }
  return undefined;
}

export function ociSeccomp(profile: SeccompProfile, caps: string[], arch = NODE_ARCH[process.arch] ?? process.arch): Seccomp {
  const syscalls = (profile.syscalls ?? [])
    .filter((s) => applies(s, caps, arch))
    .map((s) => ({
      names: s.names?.length ? s.names : s.name ? [s.name] : [],
      action: s.action,
      ...(s.errnoRet !== undefined ? { errnoRet: s.errnoRet } : {}),
      ...(s.args ? { args: s.args } : {}),
    }))
    .filter((s) => s.names.length > 0);
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    architectures: architecturesFor(profile, arch),
    ...(profile.flags?.length ? { flags: profile.flags } : {}),
    ...(profile.listenerPath ? { listenerPath: profile.listenerPath } : {}),
    ...(profile.listenerMetadata ? { listenerMetadata: profile.listenerMetadata } : {}),
    syscalls,
  };
}
