// tscri's seccomp profile format (runtime/seccomp.json) to the OCI
// linux.seccomp object for one container: architectures for this host, and
// capability-conditional entries kept or dropped for the container's caps.

interface ProfileSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  includesCaps?: string[];
  excludesCaps?: string[];
  arches?: string[];
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: Record<string, string[]> | string[];
  syscalls: ProfileSyscall[];
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'x86', arm: 'arm' };

export function ociSeccomp(profile: SeccompProfile, caps: string[], arch = NODE_ARCH[process.arch] ?? process.arch): Record<string, unknown> {
  const architectures = Array.isArray(profile.architectures) ? profile.architectures : (profile.architectures[arch] ?? []);
  const syscalls = profile.syscalls
    .filter((s) => (s.includesCaps ?? []).every((c) => caps.includes(c)))
    .filter((s) => !(s.excludesCaps ?? []).some((c) => caps.includes(c)))
    .filter((s) => !s.arches || s.arches.includes(arch))
    .map(({ names, action, errnoRet, args }) => ({ names, action, ...(errnoRet !== undefined ? { errnoRet } : {}), ...(args ? { args } : {}) }));
  return { defaultAction: profile.defaultAction, ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}), architectures, syscalls };
}
