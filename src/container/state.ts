// What every container behaviour shares: the records and their store, the
// per-container and per-pod locks, the names reserved, the exit waiters, the
// watcher of conmon's exit files, events, and the lookups by id.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { Config } from '../config/config.ts';
import { RecordStore } from '../store/store.ts';
import { KeyedLock, SharedKeyedLock } from '../store/lock.ts';
import type { ResolvedImage, SpecRequest } from '../oci/request.ts';
import type { Resources, Spec } from '../oci/types.ts';
import { invalidArgument, notFound, quote } from '../errors.ts';
import type { SandboxRecord } from '../sandbox/record.ts';
import type { ContainerFilter__Output } from '../generated/runtime/v1/ContainerFilter.ts';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { Container } from '../generated/runtime/v1/Container.ts';
import { OciRuntime } from './runtime.ts';
import { ExitWatcher, type ExitInfo } from './exits.ts';
import { matchesFilter, toContainer, type ContainerRecord } from './record.ts';
import { ContainerEvents } from './events.ts';
import { NO_CONTAINER_NRI, type ContainerNriHooks } from './nri-bridge.ts';

export interface ContainerDeps {
  config: Config;
  log: Logger;
  sandbox(id: string): SandboxRecord | undefined;
  resolveImage(ref: string): Promise<ResolvedImage | undefined>;
  /**
   * Mounts the container's rootfs (image layers + a writable upper dir) at
   * dir; rootfsDiff (a checkpoint's rootfs-diff.tar) is unpacked into a new
   * upper dir first.
   */
  prepareRootfs(containerId: string, chainIds: string[], dir: string, rootfsDiff?: string): Promise<void>;
  /** Unmounts and deletes what prepareRootfs made. */
  removeRootfs(containerId: string, dir: string): Promise<void>;
  /**
   * Deletes a directory under --state (a bundle): renamed into a trash now,
   * deleted after the call. Idempotent.
   */
  deleteStateDir(path: string): Promise<void>;
  /** The container's writable (overlay upper) directory. */
  upperDir(containerId: string): string;
  /** Builds the OCI runtime spec (config.json). */
  makeSpec(request: SpecRequest): Promise<Spec>;
  /** The container's cgroup path for the runtime. */
  cgroupsPath(sandbox: SandboxRecord, containerId: string): string;
  /** Converts CRI resources to the OCI LinuxResources object `runc update` reads. */
  ociResources(resources: LinuxContainerResources__Output): Resources;
  /** NRI plugins, at each step of the lifecycle (none when absent). */
  nri?: ContainerNriHooks;
}

export abstract class ContainerState {
  readonly deps: ContainerDeps;
  readonly store: RecordStore<ContainerRecord>;
  readonly ops = new KeyedLock();
  /** The conmon pid of each running container, once read; and the timer that checks them. */
  readonly monitors = new Map<string, number>();
  /** Exits that happened but could not be written to the record, by container. */
  readonly exitSaveErrors = new Map<string, Error>();
  /** Why the runtime could not create a container after its CreateContainer answered; StartContainer reports it. */
  readonly launchErrors = new Map<string, Error>();
  monitorTimer?: NodeJS.Timeout;
  /** Per pod: creates and starts share it, the pod's stop and removal hold it alone. */
  readonly pods = new SharedKeyedLock();
  /** Output directories of pod checkpoints being written. */
  readonly podCheckpointDirs = new Set<string>();
  readonly writes = new KeyedLock();
  readonly names = new Map<string, string>();
  readonly exitWaiters = new Map<string, Set<() => void>>();
  /** Starts under way: settle when the start has published its event. */
  readonly starting = new Map<string, Promise<void>>();
  /**
   * The runtime state and cgroup of a container whose exit was recorded are
   * removed right away, in the background, as containerd deletes a task at
   * its exit: RemoveContainer then waits for that (long done, usually)
   * instead of running `runc delete` itself. Resolves true when it worked.
   */
  readonly exitCleanups = new Map<string, Promise<boolean>>();
  /** Removals of what removed containers left (remove.ts), still running: their pod's removal waits for them. */
  readonly afterRemoval = new Map<string, { sandboxId: string; done: Promise<void> }>();
  readonly watcher: ExitWatcher;
  readonly log: Logger;
  readonly nri: ContainerNriHooks;
  /** Directory of bundles and the exit directory, under the state dir. */
  readonly stateDir: string;
  readonly exitDir: string;
  readonly socketDir: string;

  /** Lifecycle events for GetContainerEvents subscribers. */
  readonly events = new ContainerEvents();

  constructor(deps: ContainerDeps) {
    this.deps = deps;
    this.nri = deps.nri ?? NO_CONTAINER_NRI;
    this.log = deps.log.child({ component: 'containers' });
    this.store = new RecordStore<ContainerRecord>(join(deps.config.root, 'containers'));
    this.stateDir = join(deps.config.state, 'containers');
    this.exitDir = join(deps.config.state, 'exits');
    this.socketDir = join(deps.config.state, 'sockets');
    this.watcher = new ExitWatcher(this.exitDir, (exit) => void this.onExit(exit).catch(() => undefined));
  }

  /** Records an exit conmon reported (the watcher calls it for each exit file). */
  abstract onExit(exit: ExitInfo): Promise<void>;

  runtimeFor(handler: string): OciRuntime {
    const name = handler || this.deps.config.runtime.default_handler;
    const h = this.deps.config.runtime.handlers[name];
    if (!h)
      throw invalidArgument(`runtime handler ${quote(name)} is not configured; known handlers: ${Object.keys(this.deps.config.runtime.handlers).join(', ')}`);
    return new OciRuntime(h.path, h.root || join(this.deps.config.state, 'runtime', name), this.deps.config.cgroup_driver === 'systemd');
  }

  /** A container by full id or unique prefix, else NOT_FOUND. */
  get(id: string): ContainerRecord {
    if (!id) throw invalidArgument('container_id is required');
    const r = this.store.find(id);
    if (!r) throw notFound(`container ${quote(id)} not found`);
    return r;
  }

  find(id: string): ContainerRecord | undefined {
    return id ? this.store.find(id) : undefined;
  }

  /** ListContainers' answer for each record, made again when the record's state changes. */
  private readonly listed = new WeakMap<ContainerRecord, { state: string; item: Readonly<Container> }>();

  list(filter?: ContainerFilter__Output | null): Container[] {
    const out: Array<{ at: number; item: Readonly<Container> }> = [];
    for (const r of this.store.list()) if (matchesFilter(r, filter)) out.push({ at: r.createdAt, item: this.listItem(r) });
    out.sort((a, b) => a.at - b.at);
    return out.map((o) => o.item);
  }

  /** One object per record and state (the gRPC layer may keep its encoding by identity, so it is never modified). */
  private listItem(r: ContainerRecord): Readonly<Container> {
    const cached = this.listed.get(r);
    if (cached?.state === r.state) return cached.item;
    const item = Object.freeze(toContainer(r));
    this.listed.set(r, { state: r.state, item });
    return item;
  }

  records(): ContainerRecord[] {
    return this.store.list();
  }

  persist(r: ContainerRecord): Promise<void> {
    return this.writes.with(r.id, async () => {
      if (this.store.get(r.id) === r) await this.store.put(r);
    });
  }

  waitExit(r: ContainerRecord, ms: number): Promise<boolean> {
    if (r.state === 'CONTAINER_EXITED') return Promise.resolve(true);
    return new Promise((resolve) => {
      const set = this.exitWaiters.get(r.id) ?? new Set();
      this.exitWaiters.set(r.id, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        set.delete(done);
        resolve(r.state === 'CONTAINER_EXITED');
      }, ms);
      set.add(done);
    });
  }

  wakeExitWaiters(id: string): void {
    const set = this.exitWaiters.get(id);
    if (!set) return;
    this.exitWaiters.delete(id);
    for (const wake of [...set]) wake();
  }
}

/** How log lines name a container: the name it was created with (the reservation name is in the record). */
export function containerName(r: ContainerRecord): string {
  return r.config.metadata?.name ?? r.name;
}

export function stateWord(state: string): string {
  return state.replace('CONTAINER_', '').toLowerCase();
}

export function nowNs(): number {
  return Date.now() * 1e6;
}

/** Whether pid is conmon for this container (pids are reused). */
export function isConmon(pid: number, id: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('conmon') && cmdline.includes(id);
  } catch {
    return false;
  }
}
