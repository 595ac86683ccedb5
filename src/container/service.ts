// ContainerService: the container RPCs and the pod service's PodContainers
// interface, each delegating to the file that does it: src/container/ops/
// create.ts, start.ts, stop.ts, remove.ts, status.ts, exits.ts (a process
// ended), recovery.ts (the daemon starting again), exec.ts, update.ts,
// logs.ts and checkpoint.ts (checkpoint and restore). What they share (the
// records, the locks, the exit watcher) is ContainerState (state.ts).
// Records live under <root>/containers (one JSON file each); the volatile
// parts (bundle with config.json, conmon's files, the rootfs mount point) live
// under <state>/containers/<id>, since mounts and conmon do not survive a
// reboot either. Operations on one container are serialised by a KeyedLock;
// exits arrive from the exit directory watcher and never wait on that lock.
import { existsSync } from 'node:fs';
import type { ResolvedImage } from '../oci/request.ts';
import type { Process } from '../oci/types.ts';
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { ContainerStatus } from '../generated/runtime/v1/ContainerStatus.ts';
import type { OciRuntime } from './runtime.ts';
import type { ExitInfo } from './exits.ts';
import { toStatus, type ContainerRecord } from './record.ts';
import type { ExecSyncResult } from './execsync.ts';
import { recordExit } from './ops/exits.ts';
import { loadContainers } from './ops/recovery.ts';
import { createContainer } from './ops/create.ts';
import { checkpointContainer, checkpointPod } from './ops/checkpoint.ts';
import { startContainer } from './ops/start.ts';
import { stopContainer } from './ops/stop.ts';
import { removeContainer } from './ops/remove.ts';
import { updateContainer } from './ops/update.ts';
import { execSyncIn, execTarget } from './ops/exec.ts';
import { reopenLog } from './ops/logs.ts';
import { containerStatus } from './ops/status.ts';
import { ContainerState } from './state.ts';

/** What CreateContainer needs to know about an image. */
export type { ResolvedImage, SpecRequest } from '../oci/request.ts';
export type { ContainerDeps } from './state.ts';

export class ContainerService extends ContainerState {
  /** Loads records, starts watching exits and settles containers that ended while tscri was down. */
  load(): Promise<void> {
    return loadContainers(this);
  }

  close(): void {
    clearInterval(this.monitorTimer);
    this.watcher.close();
  }

  /** Resolves once the runtime state and cgroups of ended and removed containers, deleted in the background, are gone. */
  async cleanupsDone(): Promise<void> {
    await Promise.all([...this.exitCleanups.values(), ...[...this.afterRemoval.values()].map((c) => c.done)]);
  }

  // ---- lookups ----

  /** An image present on the node, by reference or id. */
  resolveImage(ref: string): Promise<ResolvedImage | undefined> {
    return this.deps.resolveImage(ref);
  }

  status(id: string, verbose: boolean): Promise<{ status: ContainerStatus; info: Record<string, string> }> {
    return containerStatus(this, id, verbose);
  }

  // ---- create ----

  /**
   * CreateContainer. Creates in one pod run side by side, but never alongside
   * its StopPodSandbox or RemovePodSandbox: those wait for creates in flight
   * (and then stop and remove what they made), and creates after them find
   * the pod not ready or gone.
   */
  create(sandboxId: string, request: ContainerConfig__Output | null, sandboxConfig: unknown): Promise<string> {
    return createContainer(this, sandboxId, request, sandboxConfig);
  }

  /** Runs fn while no container of the pod is being created or started (the pod service stops and removes pods so). */
  exclusive<R>(sandboxId: string, fn: () => Promise<R>): Promise<R> {
    return this.pods.exclusive(sandboxId, fn);
  }

  // ---- start, checkpoint, stop, remove ----

  start(id: string): Promise<void> {
    return startContainer(this, id);
  }

  /** CheckpointContainer: the running container's processes and file changes into an archive; it keeps running. */
  checkpoint(id: string, location: string, timeoutSeconds: number, signal?: AbortSignal): Promise<void> {
    return checkpointContainer(this, id, location, timeoutSeconds, signal);
  }

  /**
   * CheckpointPod: the selected running containers of a ready pod, paused
   * together so the archives are one consistent cut of the pod, each
   * checkpointed into dir, then all resumed (on failure too). The manifest
   * with the pod's config is written last; a failure removes what was written.
   */
  checkpointPod(sandboxId: string, containerIds: string[], dir: string, signal?: AbortSignal): Promise<void> {
    return checkpointPod(this, sandboxId, containerIds, dir, signal);
  }

  /** Stops a container: its stop signal, then SIGKILL after timeoutSeconds. Idempotent. */
  stop(id: string, timeoutSeconds: number): Promise<void> {
    return stopContainer(this, id, timeoutSeconds);
  }

  remove(id: string): Promise<void> {
    return removeContainer(this, id);
  }

  // ---- exits ----

  onExit(exit: ExitInfo): Promise<void> {
    return recordExit(this, exit);
  }

  // ---- update, logs, exec ----

  /** UpdateContainerResources; `requested` is false for updates NRI plugins asked for, which plugins are not told of. */
  update(id: string, request: LinuxContainerResources__Output | null, requested = true): Promise<void> {
    return updateContainer(this, id, request, requested);
  }

  /** Asks conmon to reopen the log file (kubelet rotated it). */
  reopenLog(id: string): Promise<void> {
    return reopenLog(this, id);
  }

  execSync(id: string, cmd: string[], timeoutSeconds: number, signal?: AbortSignal): Promise<ExecSyncResult> {
    return execSyncIn(this, id, cmd, timeoutSeconds, signal);
  }

  /** The process spec for a command run in container id (used by streaming exec). */
  execTarget(id: string): Promise<{ record: ContainerRecord; runtime: OciRuntime; process: Process }> {
    return execTarget(this, id);
  }

  // ---- PodContainers ----

  async stopAll(sandboxId: string, timeoutSeconds: number): Promise<void> {
    const ids = this.store
      .list()
      .filter((r) => r.sandboxId === sandboxId)
      .map((r) => r.id);
    await Promise.all(ids.map((id) => stopContainer(this, id, timeoutSeconds)));
  }

  async removeAll(sandboxId: string): Promise<void> {
    const ids = this.store
      .list()
      .filter((r) => r.sandboxId === sandboxId)
      .map((r) => r.id);
    await Promise.all(ids.map((id) => removeContainer(this, id)));
    // Removed earlier or just now, their cgroups must be gone before the pod's.
    const cleanups = [...this.afterRemoval.values()].filter((c) => c.sandboxId === sandboxId).map((c) => c.done);
    await Promise.all(cleanups);
  }

  /** The pid of the pod's earliest running container whose process is alive. */
  runningPid(sandboxId: string): number | undefined {
    const running = this.store
      .list()
      .filter((r) => r.sandboxId === sandboxId && r.state === 'CONTAINER_RUNNING' && r.pid > 0)
      .sort((a, b) => a.createdAt - b.createdAt);
    return running.find((r) => existsSync(`/proc/${r.pid}`))?.pid;
  }

  async statuses(sandboxId: string): Promise<ContainerStatus[]> {
    return this.store
      .list()
      .filter((r) => r.sandboxId === sandboxId)
      .map(toStatus);
  }
}
