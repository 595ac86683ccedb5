// NRI as the pod and container services see it: one call per lifecycle step,
// taking their records. This module turns records into NRI's views, applies
// the adjustments plugins make to a container's OCI spec, maps plugin
// failures to the runtime's errors, and carries out the updates and
// evictions plugins ask for.
//
// Which failures fail the call: RunPodSandbox, CreateContainer,
// StartContainer, UpdateContainer and UpdatePodSandbox (a plugin may refuse
// them). The other events are notifications: a failure is logged.
import type { Spec } from '../oci/types.ts';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../log.ts';
import { bundleFiles } from './conmon.ts';
import type { ContainerRecord } from './record.ts';
import type { SandboxRecord } from '../sandbox/record.ts';
import type { PodNriHooks } from '../sandbox/nri-hooks.ts';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import { nriContainer } from './nri-view.ts';
import { nriPod } from '../sandbox/nri-view.ts';
import { clampOomScoreAdj } from '../sandbox/oom.ts';
import { DomainError, deadlineExceeded, failedPrecondition } from '../errors.ts';
import { NriError } from '../nri/errors.ts';
import type { Nri, NriRuntime } from '../nri/nri.ts';
import { criToNriResources, nriToCriResources } from '../nri/resources.ts';
import { applyAdjustment, type AdjustableSpec } from '../nri/spec.ts';
import { addCdiDevices } from '../oci/cdi.ts';
import type { Container, ContainerEviction, ContainerUpdate, PodSandbox } from '../nri/types.ts';

type Resources = LinuxContainerResources__Output;

/** The NRI steps of the container lifecycle. */
export interface ContainerNriHooks {
  /**
   * Lets plugins adjust the OCI spec of a container being created (in
   * place). Until postCreateContainer or createFailed, no plugin is
   * synchronized, so a new plugin learns of the container one way or the other.
   */
  createContainer(container: ContainerRecord, spec: Spec): Promise<void>;
  /** The container is created and listed. */
  postCreateContainer(container: ContainerRecord): Promise<void>;
  /** The creation failed after createContainer: plugins release what they set aside. */
  createFailed(container: ContainerRecord): Promise<void>;
  startContainer(container: ContainerRecord): Promise<void>;
  postStartContainer(container: ContainerRecord): Promise<void>;
  /** The resources the container is updated to, as plugins changed them. */
  updateContainer(container: ContainerRecord, resources: Resources): Promise<Resources>;
  postUpdateContainer(container: ContainerRecord): Promise<void>;
  /**
   * The container stopped or exited. Relayed once; later calls return the
   * same promise. Starts the relay before it returns to the event loop, so
   * a removal that follows is relayed after it.
   */
  stopContainer(container: ContainerRecord): Promise<void>;
  removeContainer(container: ContainerRecord): Promise<void>;
}

export type NriHooks = PodNriHooks & ContainerNriHooks;

/** No NRI: every step does nothing. */
export const NO_CONTAINER_NRI: ContainerNriHooks = {
  async createContainer() {},
  async postCreateContainer() {},
  async createFailed() {},
  async startContainer() {},
  async postStartContainer() {},
  async updateContainer(_c, resources) {
    return resources;
  },
  async postUpdateContainer() {},
  async stopContainer() {},
  async removeContainer() {},
};

/** What the bridge needs from the runtime. */
export interface NriBridgeDeps {
  log: Logger;
  /** Where CDI spec files are, for CDI devices plugins add. */
  cdiSpecDirs?: () => string[];
  sandbox(id: string): SandboxRecord | undefined;
  sandboxes(): SandboxRecord[];
  container(id: string): ContainerRecord | undefined;
  containers(): ContainerRecord[];
  /** Updates a container's resources without relaying UpdateContainer (plugins asked for it). */
  updateResources(id: string, resources: Resources): Promise<void>;
  /** Stops a container at once. */
  stopContainer(id: string): Promise<void>;
}

/** The NRI error as the runtime reports it: a plugin's timeout, or its refusal. */
export function nriStatus(err: unknown, step: string): DomainError {
  if (err instanceof DomainError) return err;
  const message = `NRI ${step}: ${(err as Error).message}`;
  if (err instanceof NriError && err.kind === 'timeout') return deadlineExceeded(message);
  return failedPrecondition(message);
}

export class NriBridge implements NriHooks, NriRuntime {
  private readonly nri: Nri;
  private readonly deps: NriBridgeDeps;
  private readonly log: Logger;
  /** Containers between createContainer and postCreateContainer/createFailed: releases plugin synchronization. */
  private readonly creating = new Map<string, () => void>();
  private readonly stops = new Map<string, Promise<void>>();

  constructor(nri: Nri, deps: NriBridgeDeps) {
    this.nri = nri;
    this.deps = deps;
    this.log = deps.log.child({ component: 'nri' });
  }

  // ---- pods ----

  async runPodSandbox(record: SandboxRecord): Promise<void> {
    const pod = nriPod(record);
    try {
      await this.nri.runPodSandbox(pod);
    } catch (err) {
      // Plugins invoked before the one that failed may hold state for the pod.
      await this.nri.removePodSandbox(pod).catch(() => undefined);
      throw nriStatus(err, 'RunPodSandbox');
    }
  }

  async stopPodSandbox(record: SandboxRecord): Promise<void> {
    if (record.stoppedAt !== undefined) return;
    await this.nri.stopPodSandbox(nriPod(record)).catch((err) => this.warn(err, 'StopPodSandbox', { pod: record.id }));
  }

  async removePodSandbox(record: SandboxRecord): Promise<void> {
    await this.nri.removePodSandbox(nriPod(record), record.stoppedAt !== undefined).catch((err) => this.warn(err, 'RemovePodSandbox', { pod: record.id }));
  }

  async updatePodSandbox(record: SandboxRecord, overhead: Resources | null, resources: Resources | null): Promise<void> {
    try {
      await this.nri.updatePodSandbox(nriPod(record), overhead ? criToNriResources(overhead) : null, resources ? criToNriResources(resources) : null);
    } catch (err) {
      throw nriStatus(err, 'UpdatePodSandbox');
    }
  }

  async postUpdatePodSandbox(record: SandboxRecord): Promise<void> {
    await this.nri.postUpdatePodSandbox(nriPod(record)).catch((err) => this.warn(err, 'PostUpdatePodSandbox', { pod: record.id }));
  }

  // ---- containers ----

  async createContainer(record: ContainerRecord, spec: Spec): Promise<void> {
    const release = await this.nri.blockSync();
    this.creating.set(record.id, release);
    const pod = this.pod(record);
    const container = nriContainer(record, spec as AdjustableSpec);
    let result;
    try {
      result = await this.nri.createContainer(pod, container);
      // CDI devices resolve against the spec files, which applyAdjustment cannot read.
      const { CDI_devices: cdi, ...adjust } = result.adjust;
      await addCdiDevices(
        spec,
        (cdi ?? []).map((d) => d.name ?? ''),
        this.deps.cdiSpecDirs?.() ?? [],
      );
      applyAdjustment(spec as AdjustableSpec, adjust, { clampOomScoreAdj });
    } catch (err) {
      await this.createFailed(record);
      throw nriStatus(err, 'CreateContainer');
    }
    if (spec.linux?.cgroupsPath && spec.linux.cgroupsPath !== record.cgroupsPath) record.cgroupsPath = spec.linux.cgroupsPath;
    if (result.updates.length > 0) {
      const failed = (await this.updateContainers(result.updates)).filter((u) => !u.ignore_failure);
      if (failed.length > 0) {
        await this.createFailed(record);
        throw failedPrecondition(`NRI CreateContainer: plugins asked to update container ${failed[0]?.container_id}, which failed`);
      }
    }
    this.evictInBackground(result.evictions);
  }

  async postCreateContainer(record: ContainerRecord): Promise<void> {
    this.releaseSync(record.id);
    await this.nri.postCreateContainer(this.pod(record), nriContainer(record)).catch((err) => this.warn(err, 'PostCreateContainer', { container: record.id }));
  }

  async createFailed(record: ContainerRecord): Promise<void> {
    if (!this.creating.has(record.id)) return;
    this.releaseSync(record.id);
    await this.nri.undoCreateContainer(this.pod(record), nriContainer(record));
    this.stops.delete(record.id);
  }

  async startContainer(record: ContainerRecord): Promise<void> {
    try {
      await this.nri.startContainer(this.pod(record), nriContainer(record));
    } catch (err) {
      throw nriStatus(err, 'StartContainer');
    }
  }

  async postStartContainer(record: ContainerRecord): Promise<void> {
    await this.nri.postStartContainer(this.pod(record), nriContainer(record)).catch((err) => this.warn(err, 'PostStartContainer', { container: record.id }));
  }

  async updateContainer(record: ContainerRecord, resources: Resources): Promise<Resources> {
    let result;
    try {
      result = await this.nri.updateContainer(this.pod(record), nriContainer(record), criToNriResources(resources));
    } catch (err) {
      throw nriStatus(err, 'UpdateContainer');
    }
    const { resources: adjusted, unsupported } = nriToCriResources(result.resources, resources);
    if (unsupported.length > 0) throw failedPrecondition(`NRI UpdateContainer: plugins asked for ${unsupported.join(', ')}, which tscri cannot update`);
    // Other containers' updates wait for no lock of this one.
    if (result.updates.length > 0) void this.updateContainers(result.updates);
    this.evictInBackground(result.evictions);
    return adjusted as Resources;
  }

  async postUpdateContainer(record: ContainerRecord): Promise<void> {
    await this.nri.postUpdateContainer(this.pod(record), nriContainer(record)).catch((err) => this.warn(err, 'PostUpdateContainer', { container: record.id }));
  }

  stopContainer(record: ContainerRecord): Promise<void> {
    const pending = this.stops.get(record.id);
    if (pending) return pending;
    const stop = this.nri.stopContainer(this.pod(record), nriContainer(record)).then(
      (updates) => {
        // Applied in the background: the containers they name may be stopping too, holding their locks.
        if (updates.length > 0) void this.updateContainers(updates);
      },
      (err) => this.warn(err, 'StopContainer', { container: record.id }),
    );
    this.stops.set(record.id, stop);
    return stop;
  }

  async removeContainer(record: ContainerRecord): Promise<void> {
    await this.stopContainer(record);
    this.stops.delete(record.id);
    await this.nri.removeContainer(this.pod(record), nriContainer(record)).catch((err) => this.warn(err, 'RemoveContainer', { container: record.id }));
  }

  // ---- NriRuntime: what plugins see and ask for ----

  async snapshot(): Promise<{ pods: PodSandbox[]; containers: Container[] }> {
    const pods = this.deps.sandboxes().map(nriPod);
    const containers = await Promise.all(this.deps.containers().map(async (r) => nriContainer(r, await readSpec(r))));
    return { pods, containers };
  }

  async updateContainers(updates: ContainerUpdate[]): Promise<ContainerUpdate[]> {
    const failed: ContainerUpdate[] = [];
    for (const update of updates) {
      const id = update.container_id ?? '';
      const record = this.deps.container(id);
      const why = await this.updateOne(record, update).catch((err: Error) => err.message);
      if (why === undefined) continue;
      this.log.warn({ container: id, reason: why, ignoreFailure: update.ignore_failure ?? false }, 'NRI plugin-requested container update failed');
      failed.push(update);
    }
    return failed;
  }

  async evictContainers(evictions: ContainerEviction[]): Promise<void> {
    for (const e of evictions) {
      const id = e.container_id ?? '';
      if (!this.deps.container(id)) {
        this.log.warn({ container: id, reason: e.reason }, 'NRI eviction of an unknown container ignored');
        continue;
      }
      this.log.warn({ container: id, reason: e.reason }, 'evicting container');
      await this.deps.stopContainer(id).catch((err) => this.log.error({ container: id, err: (err as Error).message }, 'NRI eviction failed'));
    }
  }

  private async updateOne(record: ContainerRecord | undefined, update: ContainerUpdate): Promise<string | undefined> {
    if (!record) return 'no such container';
    if (record.state !== 'CONTAINER_RUNNING' && record.state !== 'CONTAINER_CREATED') return `the container is ${record.state}`;
    const { resources, unsupported } = nriToCriResources(update.linux?.resources ?? {}, record.resources);
    if (unsupported.length > 0) return `tscri cannot update ${unsupported.join(', ')}`;
    await this.deps.updateResources(record.id, resources as Resources);
    return undefined;
  }

  private evictInBackground(evictions: ContainerEviction[]): void {
    if (evictions.length > 0) void this.evictContainers(evictions);
  }

  private releaseSync(id: string): void {
    const release = this.creating.get(id);
    this.creating.delete(id);
    release?.();
  }

  private pod(record: ContainerRecord): PodSandbox {
    const sandbox = this.deps.sandbox(record.sandboxId);
    return sandbox ? nriPod(sandbox) : { id: record.sandboxId };
  }

  private warn(err: unknown, event: string, fields: Record<string, string>): void {
    this.log.warn({ ...fields, err: (err as Error).message }, `NRI ${event} failed`);
  }
}

/** A container's OCI spec as written to its bundle, if it can be read. */
async function readSpec(record: ContainerRecord): Promise<AdjustableSpec | undefined> {
  return readFile(bundleFiles(record.bundle).config, 'utf8').then(
    (text) => JSON.parse(text) as AdjustableSpec,
    () => undefined,
  );
}
