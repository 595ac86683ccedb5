// config.dump, the container metadata in a checkpoint archive, and how a
// restore turns it plus a CreateContainer request into the new container's
// configuration.
//
// The field names of config.dump follow checkpointctl's ContainerConfig
// (id, name, rootfsImage, rootfsImageRef, rootfsImageName, runtime,
// createdTime, checkpointedTime, restored), so checkpointctl can show the
// archive; tscri adds the pod sandbox id and the CRI ContainerConfig the
// container was created with, which is what a restore starts from.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { Mount__Output } from '../generated/runtime/v1/Mount.ts';

export interface ConfigDump {
  id: string;
  name: string;
  /** The image as the user asked for it. */
  rootfsImage: string;
  /** The image id (sha256:...). */
  rootfsImageRef: string;
  /** A name of the image (a tag or digest reference). */
  rootfsImageName: string;
  /** The runtime handler. */
  runtime: string;
  createdTime: string;
  checkpointedTime: string;
  restored: boolean;
  podSandboxId: string;
  containerConfig: ContainerConfig__Output;
}

export interface DumpSource {
  id: string;
  name: string;
  imageRef: string;
  imageId: string;
  imageName: string;
  runtimeHandler: string;
  /** Nanoseconds since the epoch. */
  createdAt: number;
  sandboxId: string;
  restored: boolean;
  config: ContainerConfig__Output;
}

export function makeConfigDump(s: DumpSource, now = new Date()): ConfigDump {
  return {
    id: s.id,
    name: s.name,
    rootfsImage: s.imageRef,
    rootfsImageRef: s.imageId,
    rootfsImageName: s.imageName || s.imageRef,
    runtime: s.runtimeHandler,
    createdTime: new Date(Math.floor(s.createdAt / 1e6)).toISOString(),
    checkpointedTime: now.toISOString(),
    restored: s.restored,
    podSandboxId: s.sandboxId,
    containerConfig: s.config,
  };
}

/** A restore request that does not fit the archive. */
export class RestoreError extends Error {}

/** Checks the parts of config.dump a restore relies on. */
export function validConfigDump(raw: unknown): ConfigDump {
  const c = raw as Partial<ConfigDump> | null;
  if (!c || typeof c !== 'object') throw new RestoreError('config.dump of the checkpoint archive is not an object');
  if (!c.rootfsImageName && !c.rootfsImageRef && !c.rootfsImage) throw new RestoreError('config.dump of the checkpoint archive names no image');
  if (!c.containerConfig || typeof c.containerConfig !== 'object') {
    throw new RestoreError('config.dump of the checkpoint archive has no containerConfig (was it written by tscri?)');
  }
  for (const key of ['id', 'name', 'rootfsImage', 'rootfsImageRef', 'rootfsImageName', 'checkpointedTime'] as const) {
    if (c[key] !== undefined && typeof c[key] !== 'string') throw new RestoreError(`config.dump of the checkpoint archive: ${key} is not a string`);
  }
  const problem = containerConfigProblem(c.containerConfig as unknown as Fields);
  if (problem) throw new RestoreError(`config.dump of the checkpoint archive: containerConfig.${problem}`);
  return c as ConfigDump;
}

const isStrings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');

type Fields = Record<string, unknown>;

const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null;
const listOf = (v: unknown, ok: (item: Fields) => boolean) => Array.isArray(v) && v.every((x) => isObject(x) && ok(x));

/** What in an archived ContainerConfig a restore cannot use, or undefined. */
function containerConfigProblem(c: Fields): string | undefined {
  for (const key of ['command', 'args'] as const) if (present(c[key]) && !isStrings(c[key])) return `${key} is not a list of strings`;
  if (present(c.working_dir) && typeof c.working_dir !== 'string') return 'working_dir is not a string';
  if (present(c.envs) && !listOf(c.envs, (e) => typeof e.key === 'string' && (typeof e.value === 'string' || e.value === undefined))) {
    return 'envs is not a list of key/value strings';
  }
  if (present(c.mounts) && !listOf(c.mounts, (m) => typeof m.container_path === 'string')) {
    return 'mounts is not a list of mounts with a container_path';
  }
  for (const key of ['tty', 'stdin', 'stdin_once'] as const) if (present(c[key]) && typeof c[key] !== 'boolean') return `${key} is not a boolean`;
  if (present(c.stop_signal) && typeof c.stop_signal !== 'string' && typeof c.stop_signal !== 'number') return 'stop_signal is not a signal';
  const r = isObject(c.linux) ? c.linux.resources : undefined;
  if (!present(r)) return undefined;
  if (!isObject(r)) return 'linux.resources is not an object';
  for (const key of ['cpu_period', 'cpu_quota', 'cpu_shares', 'memory_limit_in_bytes', 'oom_score_adj', 'memory_swap_limit_in_bytes']) {
    if (present(r[key]) && !Number.isSafeInteger(Number(r[key]))) return `linux.resources.${key} is not a number`;
  }
  for (const key of ['cpuset_cpus', 'cpuset_mems']) if (present(r[key]) && typeof r[key] !== 'string') return `linux.resources.${key} is not a string`;
  if (present(r.hugepage_limits) && !listOf(r.hugepage_limits, (h) => typeof h.page_size === 'string')) {
    return 'linux.resources.hugepage_limits is not a list of limits';
  }
  if (present(r.unified) && (!isObject(r.unified) || !Object.values(r.unified).every((v) => typeof v === 'string')))
    return 'linux.resources.unified is not a map of strings';
  return undefined;
}

/** The image names to try for a restore, most specific first. */
export function imageCandidates(dump: ConfigDump): string[] {
  return [...new Set([dump.rootfsImageName, dump.rootfsImage, dump.rootfsImageRef].filter((s): s is string => Boolean(s)))];
}

/**
 * Each mount the checkpointed container had must be asked for again, at the
 * same container path: the archive alone must never bind a host path the
 * request did not name. The request's host path and options are used.
 */
function restoreMounts(archived: Mount__Output[], requested: Mount__Output[]): Mount__Output[] {
  const missing: string[] = [];
  const mounts = archived.map((m) => {
    const match = requested.find((r) => r.container_path === m.container_path);
    if (!match) missing.push(m.container_path);
    return match ?? m;
  });
  if (missing.length) throw new RestoreError(`the checkpointed container had mounts the request does not define: ${missing.join(', ')}`);
  return mounts;
}

/**
 * The configuration of a restored container. From the archive: what the
 * processes were started with (command, args, environment, working dir,
 * tty and stdin, stop signal) and resources when the request sets none.
 * From the request only: metadata, labels, annotations, log path, mounts,
 * devices and CDI devices, and the whole security context (privilege,
 * capabilities, seccomp, AppArmor, user, namespaces): an archive is a file
 * anyone may have written, and must not grant what the request did not ask for.
 */
export function restoredConfig(archived: ContainerConfig__Output, request: ContainerConfig__Output, image: string): ContainerConfig__Output {
  return {
    metadata: request.metadata,
    image: { ...(request.image ?? archived.image!), image },
    command: archived.command ?? [],
    args: archived.args ?? [],
    working_dir: archived.working_dir ?? '',
    envs: archived.envs ?? [],
    tty: Boolean(archived.tty),
    stdin: Boolean(archived.stdin),
    stdin_once: Boolean(archived.stdin_once),
    stop_signal: archived.stop_signal,
    labels: request.labels ?? {},
    annotations: request.annotations ?? {},
    log_path: request.log_path,
    mounts: restoreMounts(archived.mounts ?? [], request.mounts ?? []),
    devices: request.devices ?? [],
    CDI_devices: request.CDI_devices ?? [],
    linux: {
      resources: request.linux?.resources ?? archived.linux?.resources ?? null,
      security_context: request.linux?.security_context ?? null,
    },
    windows: null,
  };
}
