// Checks of a CRI request that would otherwise only fail deep in the runtime
// (runc, conmon, the kernel) and come back as an internal error: NUL bytes in
// any string, relative paths where the OCI spec needs absolute ones, negative
// or malformed resources and ids. Each names the field and what is wrong.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import { checkResources } from '../cgroups/cgroups.ts';
import { quote } from '../errors.ts';
import { SpecError } from './errors.ts';

/** The first string (or map key, or byte string) in a request that holds a NUL byte, as a field path. */
export function nulField(value: unknown, path: string, depth = 0): string | undefined {
  if (depth > 16) return undefined;
  if (typeof value === 'string') return value.includes('\0') ? path : undefined;
  if (value instanceof Uint8Array) return value.includes(0) ? path : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = nulField(item, `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes('\0')) return `a key of ${path}`;
      const found = nulField(item, `${path}.${key}`, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

/** Refuses a request with a NUL byte anywhere: no file name, argument or environment can hold one. */
export function refuseNul(value: unknown, path: string): void {
  const field = nulField(value, path);
  if (field) throw new SpecError(`${field} contains a NUL byte`);
}

const MAX_ID = 4294967294;

function checkId(value: unknown, field: string): void {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_ID) throw new SpecError(`${field} ${quote(String(value))} is not a user or group id (0-${MAX_ID})`);
}

/** Everything in a CreateContainer config that the runtime would refuse with an unclear error. */
export function checkContainerConfig(config: ContainerConfig__Output): void {
  refuseNul(config, 'config');
  if (config.working_dir && !config.working_dir.startsWith('/'))
    throw new SpecError(`config.working_dir ${quote(config.working_dir)} must be an absolute path`);
  for (const [i, m] of (config.mounts ?? []).entries()) {
    if (m.host_path && !m.host_path.startsWith('/')) throw new SpecError(`config.mounts[${i}].host_path ${quote(m.host_path)} must be an absolute path`);
  }
  const sc = config.linux?.security_context;
  if (sc?.run_as_user) checkId(sc.run_as_user.value, 'run_as_user');
  if (sc?.run_as_group) checkId(sc.run_as_group.value, 'run_as_group');
  for (const g of sc?.supplemental_groups ?? []) checkId(g, 'supplemental_groups');
  for (const [key, paths] of [
    ['masked_paths', sc?.masked_paths],
    ['readonly_paths', sc?.readonly_paths],
  ] as const) {
    for (const p of paths ?? []) if (!p.startsWith('/')) throw new SpecError(`${key} entry ${quote(p)} must be an absolute path`);
  }
  checkContainerResources(config.linux?.resources);
}

/** Resources of CreateContainer or UpdateContainerResources. */
export function checkContainerResources(resources: Parameters<typeof checkResources>[0]): void {
  try {
    checkResources(resources);
  } catch (err) {
    throw new SpecError((err as Error).message);
  }
}
