// Pod sysctls: which namespace each belongs to, so it is applied in the
// pod's own namespace and refused where the pod shares the host's.

export type SysctlNamespace = 'net' | 'ipc';
import { quote } from '../errors.ts';

/** The /proc/sys path of a sysctl name (dot form, or slash form whose dots are part of names). */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key : key.replace(/\./g, '/');
  if (!/^[A-Za-z0-9_./-]+$/.test(key) || rel.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`invalid sysctl name ${quote(key)}`);
  }
  return `/proc/sys/${rel}`;
}

/** The namespace a sysctl is isolated by, or undefined for node-wide sysctls. */
export function sysctlNamespace(key: string): SysctlNamespace | undefined {
  const dotted = key.includes('/') ? key.split('/').join('.') : key;
  if (dotted.startsWith('net.')) return 'net';
  if (dotted.startsWith('fs.mqueue.')) return 'ipc';
  if (/^kernel\.(shm[a-z_]*|msg[a-z_]*|sem)$/.test(dotted)) return 'ipc';
  return undefined;
}

/**
 * Checks a pod's sysctls: each must belong to a namespace the pod owns (its
 * own network, its own IPC). Returns them as [/proc/sys path, value].
 */
export function checkSysctls(sysctls: Record<string, string>, owns: { net: boolean; ipc: boolean }): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(sysctls)) {
    const ns = sysctlNamespace(key);
    if (!ns) throw new Error(`sysctl ${key} is not namespaced: it would change the whole node`);
    if (ns === 'net' && !owns.net) throw new Error(`sysctl ${key} needs the pod's own network namespace; a host-network pod may not set it`);
    if (ns === 'ipc' && !owns.ipc) throw new Error(`sysctl ${key} needs the pod's own IPC namespace; a host-IPC pod may not set it`);
    if (/[\n\0]/.test(value)) throw new Error(`sysctl ${key} has an invalid value`);
    out.push([sysctlPath(key), value]);
  }
  return out;
}
