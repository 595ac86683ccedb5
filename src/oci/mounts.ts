// The container's mounts: the default kernel filesystems, the pod's files
// (hostname, resolv.conf, hosts, /dev/shm), and the request's bind and image
// mounts with their read-only, recursive read-only and propagation options.
import { isAbsolute, normalize, join } from 'node:path';
import type { Mount__Output } from '../generated/runtime/v1/Mount.ts';
import type { SpecSandbox } from './request.ts';
import { SpecError } from './errors.ts';
import { quote } from '../errors.ts';

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export function defaultMounts(privileged: boolean, sandbox: SpecSandbox): OciMount[] {
  const ro = privileged ? [] : ['ro'];
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ...ro] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', ...ro] },
  ];
  mounts.push(
    sandbox.files.shm
      ? { destination: '/dev/shm', type: 'bind', source: sandbox.files.shm, options: ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec'] }
      : { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  );
  for (const [destination, source] of [
    ['/etc/hostname', sandbox.files.hostname],
    ['/etc/resolv.conf', sandbox.files.resolvConf],
    ['/etc/hosts', sandbox.files.hosts],
  ] as const) {
    if (source) mounts.push({ destination, type: 'bind', source, options: ['rbind', 'rprivate', 'rw'] });
  }
  return mounts;
}

const PROPAGATION: Record<string, string> = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

const ALLOWED_OPTIONS = new Set(['noexec', 'nodev', 'nosuid', 'exec', 'dev', 'suid', 'noatime', 'relatime', 'strictatime', 'nodiratime']);

function checkPath(path: string, what: string): string {
  if (!path || !isAbsolute(path)) throw new SpecError(`${what} ${quote(path)} must be an absolute path`);
  return normalize(path);
}

/** The request's mounts; image mounts use the read-only image paths given in imageMounts. */
export function requestMounts(mounts: Mount__Output[], imageMounts: Record<string, string>, rroSupported: boolean): OciMount[] {
  return mounts.map((m) => {
    const destination = checkPath(m.container_path, 'mount container_path');
    const options = ['rbind', PROPAGATION[m.propagation] ?? 'rprivate'];
    for (const o of m.mount_options ?? []) {
      if (!ALLOWED_OPTIONS.has(o)) throw new SpecError(`mount option ${quote(o)} is not supported on ${destination}`);
      options.push(o);
    }
    if (m.image?.image) {
      // An image volume is the image's read-only content; kubelet always asks for it read-only.
      if (!m.readonly) throw new SpecError(`the image volume at ${destination} must be read-only: readonly is false`);
      const root = imageMounts[m.image.image];
      if (!root) throw new SpecError(`image ${quote(m.image.image)} for the volume at ${destination} is not present on this node; pull it first`);
      const sub = m.image_sub_path ? normalize(m.image_sub_path).replace(/^\/+/, '') : '';
      if (sub.split('/').includes('..')) throw new SpecError(`image_sub_path ${quote(m.image_sub_path)} escapes the image`);
      return { destination, type: 'bind', source: sub ? join(root, sub) : root, options: [...options, 'ro', 'nosuid', 'nodev'] };
    }
    const source = checkPath(m.host_path, 'mount host_path');
    if (m.recursive_read_only) {
      if (!m.readonly) throw new SpecError(`recursive read-only mount ${destination} needs readonly too (recursive_read_only is set with readonly false)`);
      if (!rroSupported)
        throw new SpecError(
          `recursive read-only mounts are not supported by the pod's runtime handler on this node (they need its "rro" mount option and Linux 5.12 or later; mount ${destination})`,
        );
      if (options[1] !== 'rprivate') throw new SpecError(`recursive read-only mount ${destination} must use private propagation`);
      options.push('rro');
    } else if (m.readonly) {
      options.push('ro');
    }
    return { destination, type: 'bind', source, options };
  });
}

/** Defaults first, then request mounts by depth; a request mount replaces a default at the same place. */
export function mergeMounts(defaults: OciMount[], requested: OciMount[]): OciMount[] {
  const taken = new Set(requested.map((m) => m.destination));
  const depth = (m: OciMount) => m.destination.split('/').length;
  return [...defaults.filter((m) => !taken.has(m.destination)), ...[...requested].sort((a, b) => depth(a) - depth(b))];
}

/**
 * The propagation of the container's root mount. A bidirectional mount
 * needs a shared root, or mounts made in the container never reach the
 * host; a host-to-container one needs at least a slave root. Undefined
 * leaves runc's default (rslave).
 */
export function rootfsPropagation(mounts: Mount__Output[]): string | undefined {
  if (mounts.some((m) => m.propagation === 'PROPAGATION_BIDIRECTIONAL')) return 'rshared';
  if (mounts.some((m) => m.propagation === 'PROPAGATION_HOST_TO_CONTAINER')) return 'rslave';
  return undefined;
}
