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
  return c as ConfigDump;
}

/** The image names to try for a restore, most specific first. */
export function imageCandidates(dump: ConfigDump): string[] {
  return [...new Set([dump.rootfsImageName, dump.rootfsImage, dump.rootfsImageRef].filter((s): s is string => Boolean(s)))];
}

const HASH_ANNOTATION = 'io.kubernetes.container.hash';

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
 * The configuration of a restored container: the archived one (command,
 * environment, working dir, tty, devices) with the request's metadata,
 * labels, log path and mounts; the request's resources and security context
 * when it sets them; the archived annotations with the request's container
 * hash, so kubelet does not think the container changed.
 */
export function restoredConfig(archived: ContainerConfig__Output, request: ContainerConfig__Output, image: string): ContainerConfig__Output {
  const annotations = { ...(archived.annotations ?? {}) };
  const hash = request.annotations?.[HASH_ANNOTATION];
  if (hash !== undefined) annotations[HASH_ANNOTATION] = hash;
  const linux = archived.linux ? { ...archived.linux } : null;
  if (linux && request.linux?.resources) linux.resources = request.linux.resources;
  if (linux && request.linux?.security_context) linux.security_context = request.linux.security_context;
  return {
    ...archived,
    metadata: request.metadata,
    image: { ...(archived.image ?? request.image!), image },
    labels: request.labels ?? {},
    annotations,
    log_path: request.log_path,
    mounts: restoreMounts(archived.mounts ?? [], request.mounts ?? []),
    linux: linux ?? request.linux,
  };
}
