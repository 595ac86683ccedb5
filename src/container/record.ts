// The persisted record of a container and the pure views built from it: the
// CRI Container (lists), ContainerStatus, list filters, the name reservation
// key and stop-signal resolution.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { Container } from '../generated/runtime/v1/Container.ts';
import type { ContainerStatus } from '../generated/runtime/v1/ContainerStatus.ts';
import type { ContainerFilter__Output } from '../generated/runtime/v1/ContainerFilter.ts';
import type { LinuxContainerResources } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { ContainerUser } from '../generated/runtime/v1/ContainerUser.ts';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';
import { parseReference, repository } from '../image/reference.ts';

export type ContainerStateName = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface ContainerRecord {
  id: string;
  sandboxId: string;
  /** The reserved name: name_sandboxname_namespace_uid_attempt. */
  name: string;
  config: ContainerConfig__Output;
  state: ContainerStateName;
  /** Nanoseconds since the epoch; 0 when not (yet) reached. */
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  reason: string;
  message: string;
  pid: number;
  /** The image as the user named it, and its id (sha256:...). */
  imageRef: string;
  imageId: string;
  /** The image's repo digest (registry/repo@sha256:...) kubelet reports as imageID; absent for images without one. */
  imageRepoDigest?: string;
  runtimeHandler: string;
  /** The OCI bundle (config.json, conmon files, rootfs mount point). */
  bundle: string;
  /** The overlay rootfs mount point. */
  rootfs: string;
  /** Absolute CRI log file path; empty when the pod has no log directory. */
  logPath: string;
  /** The image's StopSignal, if it set one. */
  imageStopSignal: string;
  resources: LinuxContainerResources | null;
  user: ContainerUser | null;
  /** The cgroup path given to the runtime. */
  cgroupsPath: string;
  /** Whether the rootfs was prepared (and must be released on removal). */
  rootfsPrepared: boolean;
  /** Image chain ids the rootfs was made from. */
  chainIds: string[];
  /** Set while a container made from a checkpoint archive waits for StartContainer, which restores it. */
  restore?: RestoreSource;
  /** When StartContainer restored the container from a checkpoint (nanoseconds); absent otherwise. */
  restoredAt?: number;
  /** The checkpoint archive a restored container came from. */
  restoredFrom?: string;
}

export interface RestoreSource {
  /** The checkpoint archive. */
  archive: string;
  /** The id of the container that was checkpointed. */
  originalId: string;
  /** When it was checkpointed (ISO 8601, from config.dump). */
  checkpointedAt: string;
}

/** The unique name kubelet's containers get, as CRI-O and containerd form it. */
export function reservationName(config: ContainerConfig__Output, pod: PodSandboxConfig__Output): string {
  const meta = pod.metadata;
  return [config.metadata?.name ?? '', meta?.name ?? '', meta?.namespace ?? '', meta?.uid ?? '', String(config.metadata?.attempt ?? 0)].join('_');
}

export function toContainer(r: ContainerRecord): Container {
  return {
    id: r.id,
    pod_sandbox_id: r.sandboxId,
    metadata: r.config.metadata,
    image: imageSpec(r),
    image_ref: r.imageId,
    image_id: r.imageId,
    state: r.state,
    created_at: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
  };
}

function imageSpec(r: ContainerRecord) {
  const image = r.config.image;
  return {
    image: r.imageRef,
    annotations: image?.annotations ?? {},
    user_specified_image: image?.user_specified_image || r.imageRef,
    runtime_handler: image?.runtime_handler ?? '',
    image_ref: r.imageId,
  };
}

export function toStatus(r: ContainerRecord): ContainerStatus {
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: r.state,
    created_at: r.createdAt,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    exit_code: r.exitCode,
    image: imageSpec(r),
    image_ref: r.imageRepoDigest || r.imageId,
    image_id: r.imageId,
    reason: r.reason,
    message: r.message,
    labels: r.config.labels,
    annotations: r.config.annotations,
    mounts: r.config.mounts,
    log_path: r.logPath,
    resources: r.resources ? { linux: r.resources } : null,
    user: r.user,
    stop_signal: r.config.stop_signal,
  };
}

/**
 * The repo digest to report for an image: the one of the repository the
 * container named (by reference, or kubelet's user_specified_image when it
 * passes the image id), else the image's first.
 */
export function pickRepoDigest(repoDigests: string[], named: string[]): string | undefined {
  const repo = (ref: string) => {
    try {
      return repository(parseReference(ref));
    } catch {
      return undefined;
    }
  };
  for (const name of named) {
    const wanted = name ? repo(name) : undefined;
    const match = wanted && repoDigests.find((d) => repo(d) === wanted);
    if (match) return match;
  }
  return repoDigests[0];
}

/** containerd-style verbose info: the record's runtime facts as JSON. */
export function verboseInfo(r: ContainerRecord, spec: unknown): Record<string, string> {
  return {
    info: JSON.stringify({
      sandboxID: r.sandboxId,
      pid: r.pid,
      removing: false,
      snapshotKey: r.id,
      runtimeType: 'io.containerd.runc.v2',
      runtimeHandler: r.runtimeHandler,
      bundle: r.bundle,
      rootfs: r.rootfs,
      cgroupsPath: r.cgroupsPath,
      config: r.config,
      runtimeSpec: spec,
      restored: Boolean(r.restoredAt),
      ...(r.restoredAt ? { restoredAt: new Date(Math.floor(r.restoredAt / 1e6)).toISOString(), restoredFrom: r.restoredFrom ?? '' } : {}),
      ...(r.restore ? { restoreFrom: r.restore.archive, checkpointedAt: r.restore.checkpointedAt } : {}),
    }),
  };
}

export function matchesFilter(r: ContainerRecord, filter: ContainerFilter__Output | null | undefined): boolean {
  if (!filter) return true;
  if (filter.id && !r.id.startsWith(filter.id)) return false;
  if (filter.state && r.state !== filter.state.state) return false;
  if (filter.pod_sandbox_id && !r.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
  for (const [key, value] of Object.entries(filter.label_selector ?? {})) {
    if (r.config.labels?.[key] !== value) return false;
  }
  return true;
}

/** The reason kubelet shows for an exited container. */
export function exitReason(exitCode: number, oomKilled: boolean): string {
  if (oomKilled) return 'OOMKilled';
  return exitCode === 0 ? 'Completed' : 'Error';
}

/**
 * The signal that stops a container: the request's, else the image's
 * StopSignal, else SIGTERM. Returns a name runc understands (SIGTERM,
 * SIGRTMIN+3) or a number.
 */
export function stopSignal(requested: string | undefined, imageSignal: string): string {
  if (requested && requested !== 'SIGNAL_RUNTIME_DEFAULT') {
    return requested
      .replace(/^SIGNAL_/, '')
      .replace(/PLUS(\d+)$/, '+$1')
      .replace(/MINUS(\d+)$/, '-$1');
  }
  const fromImage = imageSignal.trim().toUpperCase();
  if (!fromImage) return 'SIGTERM';
  if (/^\d+$/.test(fromImage)) return fromImage;
  return fromImage.startsWith('SIG') ? fromImage : `SIG${fromImage}`;
}
