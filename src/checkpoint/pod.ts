// Pod checkpoints: what CheckpointPod writes into the caller's directory and
// RestorePod reads back. The CRI makes the output an existing, empty
// directory whose files are the runtime's to define; tscri writes
//
//   container-<id>.tar    one checkpoint archive per selected container, in
//                         CheckpointContainer's layout (archive.ts)
//   pod-checkpoint.json   the manifest, written last (so its presence means the
//                         checkpoint is complete): the pod's id, runtime
//                         handler and config, and each container's name, id
//                         and archive
//
// Reading trusts nothing: the manifest is size-limited and type-checked,
// archive names must be exactly the ones tscri writes, and every file must be
// a regular file in the directory itself (no symlinks).
import { lstat, open } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';

export const POD_MANIFEST = 'pod-checkpoint.json';
export const POD_MANIFEST_VERSION = 1;
/** A manifest larger than this is not one tscri wrote. */
const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_CONTAINERS = 1024;

export interface PodManifestContainer {
  /** The container's metadata name, which a restore matches its config by. */
  name: string;
  id: string;
  archive: string;
}

export interface PodManifest {
  version: number;
  sandboxId: string;
  runtimeHandler: string;
  checkpointedTime: string;
  podConfig: PodSandboxConfig__Output;
  containers: PodManifestContainer[];
}

/** A pod checkpoint or a request that cannot be used; the message says why. */
export class PodCheckpointError extends Error {}

export function archiveName(containerId: string): string {
  return `container-${containerId}.tar`;
}

/** Options are runtime-defined; tscri defines none, and the CRI says unknown ones must be refused. */
export function unsupportedOptions(rpc: string, options: Record<string, string> | undefined): string | undefined {
  const keys = Object.keys(options ?? {}).sort();
  return keys.length ? `${rpc} options ${keys.map((k) => JSON.stringify(k)).join(', ')} are not supported: tscri defines no ${rpc} options` : undefined;
}

/** The output_path of CheckpointPod: an absolute path of an existing, empty directory (not a symlink). */
export async function checkOutputDir(dir: string): Promise<void> {
  if (!dir) throw new PodCheckpointError('output_path is required: an existing, empty directory for the checkpoint');
  if (!isAbsolute(dir) || dir.includes('\0')) throw new PodCheckpointError(`output_path ${JSON.stringify(dir)} must be an absolute path`);
  const info = await lstat(dir).catch(() => undefined);
  if (!info) throw new PodCheckpointError(`output_path ${dir} does not exist; create an empty directory for the checkpoint`);
  if (info.isSymbolicLink() || !info.isDirectory()) throw new PodCheckpointError(`output_path ${dir} is not a directory`);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/** The manifest's text, checked field by field. */
export function parseManifest(text: string): PodManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PodCheckpointError(`${POD_MANIFEST} is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw new PodCheckpointError(`${POD_MANIFEST} is not an object`);
  const raw = parsed;
  if (raw.version !== POD_MANIFEST_VERSION)
    throw new PodCheckpointError(`${POD_MANIFEST} has version ${JSON.stringify(raw.version)}; this tscri reads version ${POD_MANIFEST_VERSION}`);
  const text_ = (field: string): string => {
    const value = raw[field];
    if (typeof value !== 'string') throw new PodCheckpointError(`${POD_MANIFEST}: ${field} is not a string`);
    return value;
  };
  const sandboxId = text_('sandboxId');
  const runtimeHandler = text_('runtimeHandler');
  const checkpointedTime = text_('checkpointedTime');
  if (!isObject(raw.podConfig)) throw new PodCheckpointError(`${POD_MANIFEST}: podConfig is not an object`);
  const list = raw.containers;
  if (!Array.isArray(list) || list.length === 0) throw new PodCheckpointError(`${POD_MANIFEST} lists no containers`);
  if (list.length > MAX_CONTAINERS) throw new PodCheckpointError(`${POD_MANIFEST} lists ${list.length} containers, more than ${MAX_CONTAINERS}`);
  const names = new Set<string>();
  const ids = new Set<string>();
  const containers: PodManifestContainer[] = list.map((c: unknown, i: number) => {
    if (!isObject(c)) throw new PodCheckpointError(`${POD_MANIFEST}: containers[${i}] is not an object`);
    const { name, id, archive } = c;
    if (typeof name !== 'string' || !name) throw new PodCheckpointError(`${POD_MANIFEST}: containers[${i}] has no name`);
    if (typeof id !== 'string' || !/^[0-9a-f]{64}$/.test(id)) throw new PodCheckpointError(`${POD_MANIFEST}: containers[${i}] has no valid id`);
    if (archive !== archiveName(id))
      throw new PodCheckpointError(`${POD_MANIFEST}: containers[${i}] names archive ${JSON.stringify(archive)}; expected ${archiveName(id)}`);
    if (names.has(name)) throw new PodCheckpointError(`${POD_MANIFEST} lists container name ${JSON.stringify(name)} twice`);
    if (ids.has(id)) throw new PodCheckpointError(`${POD_MANIFEST} lists container id ${id} twice`);
    names.add(name);
    ids.add(id);
    return { name, id, archive: archiveName(id) };
  });
  return {
    version: POD_MANIFEST_VERSION,
    sandboxId,
    runtimeHandler,
    checkpointedTime,
    podConfig: raw.podConfig as unknown as PodSandboxConfig__Output,
    containers,
  };
}

async function regularFile(path: string, what: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) throw new PodCheckpointError(`${what} ${path} is missing`);
  if (!info.isFile()) throw new PodCheckpointError(`${what} ${path} is not a regular file`);
  return info.size;
}

/** Reads and checks a pod checkpoint directory; the archives' paths are absolute. */
export async function readPodCheckpoint(dir: string): Promise<{ manifest: PodManifest; archives: Map<string, string> }> {
  if (!dir) throw new PodCheckpointError('checkpoint_path is required: the directory CheckpointPod wrote');
  if (!isAbsolute(dir) || dir.includes('\0')) throw new PodCheckpointError(`checkpoint_path ${JSON.stringify(dir)} must be an absolute path`);
  const info = await lstat(dir).catch(() => undefined);
  if (!info || info.isSymbolicLink() || !info.isDirectory()) throw new PodCheckpointError(`checkpoint_path ${dir} is not a directory`);
  const manifestPath = join(dir, POD_MANIFEST);
  const size = await regularFile(manifestPath, 'the pod checkpoint manifest');
  if (size > MAX_MANIFEST) throw new PodCheckpointError(`${manifestPath} is ${size} bytes, more than the ${MAX_MANIFEST} a manifest may have`);
  const handle = await open(manifestPath, 'r');
  let text: string;
  try {
    const buffer = Buffer.alloc(Math.min(size, MAX_MANIFEST) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_MANIFEST) throw new PodCheckpointError(`${manifestPath} is more than ${MAX_MANIFEST} bytes`);
    text = buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
  const manifest = parseManifest(text);
  const archives = new Map<string, string>();
  for (const c of manifest.containers) {
    const path = join(dir, c.archive);
    await regularFile(path, `the checkpoint archive of container ${JSON.stringify(c.name)}`);
    archives.set(c.name, path);
  }
  return { manifest, archives };
}

/** A value without its empty parts (null, '', 0, false, [], {}: what a protobuf message leaves unset). */
function pruned(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruned);
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    const entries = Object.entries(value)
      .map(([k, v]) => [k, pruned(v)] as const)
      .filter(
        ([, v]) =>
          !(
            v === null ||
            v === undefined ||
            v === '' ||
            v === 0 ||
            v === false ||
            (Array.isArray(v) && !v.length) ||
            (typeof v === 'object' && !Array.isArray(v) && !Object.keys(v as object).length)
          ),
      );
    return Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b)));
  }
  return value;
}

/** JSON of the set parts with object keys sorted, so configs compare by content. */
function canonical(value: unknown): string {
  return JSON.stringify(pruned(value) ?? null);
}

/**
 * The parts of the restore-time pod config the checkpointed processes depend
 * on must be those of the checkpoint: hostname, security context (namespaces,
 * users), sysctls and port mappings. Names, uid, labels, log directory and
 * cgroup parent may change. Returns the first mismatch.
 */
export function podConfigMismatch(checkpointed: PodSandboxConfig__Output, requested: PodSandboxConfig__Output): string | undefined {
  const fields: Array<[string, (c: PodSandboxConfig__Output) => unknown]> = [
    ['hostname', (c) => c.hostname ?? ''],
    ['linux.security_context', (c) => c.linux?.security_context ?? null],
    ['linux.sysctls', (c) => c.linux?.sysctls ?? {}],
    ['port_mappings', (c) => c.port_mappings ?? []],
  ];
  for (const [name, get] of fields) {
    if (canonical(get(checkpointed)) !== canonical(get(requested))) return `the pod's ${name} differs from the checkpointed pod's`;
  }
  return undefined;
}

/**
 * The process a restore request describes must be the checkpointed one:
 * command, args, working dir and environment, where the request sets them.
 * Returns the first mismatch.
 */
export function containerConfigMismatch(checkpointed: ContainerConfig__Output, requested: ContainerConfig__Output): string | undefined {
  const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);
  if (requested.command?.length && !same(requested.command, checkpointed.command ?? [])) return 'its command differs from the checkpointed process';
  if (requested.args?.length && !same(requested.args, checkpointed.args ?? [])) return 'its args differ from the checkpointed process';
  if (requested.working_dir && requested.working_dir !== (checkpointed.working_dir ?? '')) return 'its working_dir differs from the checkpointed process';
  if (requested.envs?.length) {
    const env = (list: Array<{ key: string; value: unknown }> | undefined) => (list ?? []).map((e) => `${e.key}=${bytesText(e.value)}`).sort();
    if (!same(env(requested.envs), env(checkpointed.envs))) return 'its environment differs from the checkpointed process';
  }
  return undefined;
}

/** A bytes field as a request carries it (Buffer) or as JSON keeps it ({type: 'Buffer', data}). */
function bytesText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value && typeof value === 'object' && Array.isArray((value as { data?: unknown }).data))
    return Buffer.from((value as { data: number[] }).data).toString('utf8');
  return String(value ?? '');
}

/** Matches restore configs to the checkpoint's containers by metadata name: exactly the same set. */
export function matchContainerConfigs(manifest: PodManifest, configs: ContainerConfig__Output[]): Map<string, ContainerConfig__Output> {
  if (!configs.length) throw new PodCheckpointError('container_configs is empty: give the configuration of every checkpointed container');
  const byName = new Map<string, ContainerConfig__Output>();
  configs.forEach((c, i) => {
    const name = c.metadata?.name ?? '';
    if (!name) throw new PodCheckpointError(`container_configs[${i}] has no metadata.name`);
    if (byName.has(name)) throw new PodCheckpointError(`container_configs names container ${JSON.stringify(name)} twice`);
    byName.set(name, c);
  });
  const inCheckpoint = manifest.containers.map((c) => c.name);
  const missing = inCheckpoint.filter((n) => !byName.has(n));
  const extra = [...byName.keys()].filter((n) => !inCheckpoint.includes(n));
  if (missing.length || extra.length) {
    throw new PodCheckpointError(
      `container_configs must name exactly the checkpointed containers (${inCheckpoint.join(', ')})${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not in the checkpoint: ${extra.join(', ')}` : ''}`,
    );
  }
  return byName;
}
