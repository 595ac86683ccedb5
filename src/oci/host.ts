// Facts about this node that shape every spec, read once: cgroup version,
// AppArmor, kernel support for recursive read-only mounts, the daemon's
// oom_score_adj floor, host devices for privileged containers, and the
// RuntimeDefault seccomp profile.
import { readdirSync, readFileSync, lstatSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupVersion, hugePageSizes, hugetlbControllerAvailable } from '../cgroups/cgroups.ts';
import type { Config } from '../config/config.ts';
import type { HostDevice, HostFacts } from './spec.ts';
import { capabilitiesInMask } from './security.ts';

export const SHIPPED_SECCOMP_PROFILE = fileURLToPath(new URL('../../runtime/seccomp.json', import.meta.url));

export function kernelAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

/** Device numbers from st_rdev as glibc encodes them. */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  const r = BigInt(rdev);
  return { major: Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn)), minor: Number((r & 0xffn) | ((r >> 12n) & ~0xffn)) };
}

export function deviceAt(path: string): HostDevice | undefined {
  const info = lstatSync(path, { throwIfNoEntry: false });
  if (!info || (!info.isCharacterDevice() && !info.isBlockDevice())) return undefined;
  return { path, type: info.isCharacterDevice() ? 'c' : 'b', ...deviceNumbers(info.rdev), fileMode: info.mode & 0o777, uid: info.uid, gid: info.gid };
}

/** Device nodes under /dev, skipping the per-container filesystems. */
export function hostDevices(dir = '/dev'): HostDevice[] {
  const skip = new Set(['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/console', '/dev/ptmx']);
  const found: HostDevice[] = [];
  const walk = (path: string) => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      if (skip.has(child)) continue;
      const info = lstatSync(child, { throwIfNoEntry: false });
      if (info?.isDirectory()) walk(child);
      else {
        const device = deviceAt(child);
        if (device) found.push(device);
      }
    }
  };
  walk(dir);
  return found;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The daemon's own capability bounding set; undefined (all known) when it cannot be read. */
function boundingCapabilities(): string[] | undefined {
  const mask = /^CapBnd:\s*([0-9a-f]+)$/m.exec(read('/proc/self/status'))?.[1];
  return mask ? capabilitiesInMask(mask) : undefined;
}

export function detectHostFacts(config: Config): HostFacts {
  const profileFile = config.security.seccomp_profile || SHIPPED_SECCOMP_PROFILE;
  return {
    cgroupVersion: cgroupVersion(),
    apparmorEnabled: read('/sys/module/apparmor/parameters/enabled') === 'Y',
    apparmorDefaultProfile: config.security.apparmor_default_profile,
    rroSupported: kernelAtLeast(release(), 5, 12),
    oomScoreAdjFloor: Number.parseInt(read('/proc/self/oom_score_adj'), 10) || 0,
    restrictOomScoreAdj: config.pod.restrict_oom_score_adj,
    seccompDefaultProfile: JSON.parse(readFileSync(profileFile, 'utf8')),
    hostDevices: hostDevices(),
    boundingCapabilities: boundingCapabilities(),
    hugetlb: { controller: hugetlbControllerAvailable(), pageSizes: hugePageSizes() },
  };
}
