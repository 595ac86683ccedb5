// The runtime side of NRI: accepts plugins on the NRI socket and starts the
// pre-installed ones, synchronizes each with every pod and container, and
// relays the pod and container lifecycle events to the plugins subscribed to
// them, in index order and one event at a time, collecting their adjustments.
// The sandbox and container services call the event methods; they supply the
// runtime's state and apply plugin-requested updates through NriRuntime.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { NriSettings } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { NriError } from './errors.ts';
import { EVENT_ENUM_NAMES, Event } from './events.ts';
import { discoverPlugins, launchPlugin } from './launch.ts';
import { Mutex, ReadWriteLock } from './locks.ts';
import { CreateCollector, UpdateCollector, Updates, evictions as namedEvictions, type CreateResult } from './merge.ts';
import { Plugin, type Identity, type PluginOptions } from './plugin.ts';
import { nriCodec, type Codec } from './proto.ts';
import { Code, TtrpcError } from './ttrpc.ts';
import type { CreateContainerResponse__Output } from '../generated/nri/pkg/api/v1alpha1/CreateContainerResponse.ts';
import type { StopContainerResponse__Output } from '../generated/nri/pkg/api/v1alpha1/StopContainerResponse.ts';
import type { UpdateContainerResponse__Output } from '../generated/nri/pkg/api/v1alpha1/UpdateContainerResponse.ts';
import type { ValidateContainerAdjustmentResponse__Output } from '../generated/nri/pkg/api/v1alpha1/ValidateContainerAdjustmentResponse.ts';
import type { Container, ContainerEviction, ContainerEvictionOut, ContainerUpdate, ContainerUpdateOut, LinuxResources, PodSandbox } from './types.ts';

/** The NRI version whose protocol this implements, announced to plugins. */
export const NRI_VERSION = 'v0.12.1';

/** What NRI needs from the runtime. */
export interface NriRuntime {
  /** Every pod and container the runtime has now, for a new plugin's Synchronize. */
  snapshot(): Promise<{ pods: PodSandbox[]; containers: Container[] }>;
  /** Applies resource updates plugins asked for; returns those that failed. */
  updateContainers(updates: ContainerUpdate[]): Promise<ContainerUpdate[]>;
  /** Stops containers plugins asked to evict. */
  evictContainers(evictions: ContainerEviction[]): Promise<void>;
}

/** Plugins connected at once, including those still registering. */
const MAX_PLUGINS = 32;

const codecs = {
  RunPodSandbox: pair('RunPodSandboxRequest', 'RunPodSandboxResponse'),
  StopPodSandbox: pair('StopPodSandboxRequest', 'StopPodSandboxResponse'),
  RemovePodSandbox: pair('RemovePodSandboxRequest', 'RemovePodSandboxResponse'),
  UpdatePodSandbox: pair('UpdatePodSandboxRequest', 'UpdatePodSandboxResponse'),
  PostUpdatePodSandbox: pair('PostUpdatePodSandboxRequest', 'PostUpdatePodSandboxResponse'),
  CreateContainer: pair('CreateContainerRequest', 'CreateContainerResponse'),
  PostCreateContainer: pair('PostCreateContainerRequest', 'PostCreateContainerResponse'),
  StartContainer: pair('StartContainerRequest', 'StartContainerResponse'),
  PostStartContainer: pair('PostStartContainerRequest', 'PostStartContainerResponse'),
  UpdateContainer: pair('UpdateContainerRequest', 'UpdateContainerResponse'),
  PostUpdateContainer: pair('PostUpdateContainerRequest', 'PostUpdateContainerResponse'),
  StopContainer: pair('StopContainerRequest', 'StopContainerResponse'),
  RemoveContainer: pair('RemoveContainerRequest', 'RemoveContainerResponse'),
  StateChange: pair('StateChangeEvent', 'Empty'),
  ValidateContainerAdjustment: pair('ValidateContainerAdjustmentRequest', 'ValidateContainerAdjustmentResponse'),
};

type Method = keyof typeof codecs;

function pair(request: string, response: string): { request: Codec<object, unknown>; response: Codec<unknown, unknown> } {
  return { request: nriCodec<object, unknown>(request), response: nriCodec<unknown, unknown>(response) };
}

/** Events without adjustments, which older plugins receive as StateChange. */
const NOTIFICATIONS = new Set<Method>([
  'RunPodSandbox',
  'StopPodSandbox',
  'RemovePodSandbox',
  'PostCreateContainer',
  'StartContainer',
  'PostStartContainer',
  'PostUpdateContainer',
  'RemoveContainer',
  'PostUpdatePodSandbox',
]);

export class Nri {
  private readonly settings: NriSettings;
  private readonly identity: Identity;
  private readonly log: Logger;
  private runtime: NriRuntime | undefined;
  private plugins: Plugin[] = [];
  private connecting = 0;
  private server: Server | undefined;
  /** One event at a time, so every plugin sees the same order of events. */
  private readonly events = new Mutex();
  /** Held for reading by container creation, for writing by a plugin's Synchronize. */
  private readonly sync = new ReadWriteLock();
  private readonly stoppedContainers = new Set<string>();
  private readonly stoppedPods = new Set<string>();
  private stopping = false;

  constructor(settings: NriSettings, runtime: { name: string; version: string }, log: Logger) {
    this.settings = settings;
    this.identity = { runtimeName: runtime.name, runtimeVersion: runtime.version, nriVersion: NRI_VERSION };
    this.log = log;
  }

  get enabled(): boolean {
    return this.settings.enable;
  }

  /** Plugins registered and synchronized, in invocation order ("NN-name"). */
  pluginNames(): string[] {
    return this.plugins.map((p) => p.label());
  }

  /** Starts pre-installed plugins, then listens for plugins on the socket. */
  async start(runtime: NriRuntime): Promise<void> {
    this.runtime = runtime;
    if (!this.settings.enable) return;
    await this.startPreinstalled();
    if (!this.settings.disable_connections) await this.listen();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(this.settings.socket_path, { force: true });
    }
    const plugins = this.plugins;
    this.plugins = [];
    await Promise.all(plugins.map((p) => p.shutdown()));
  }

  /**
   * Keeps plugins from being synchronized until the returned function is
   * called: container creation holds it from the CreateContainer event until
   * the container is listed, so a new plugin learns of every container either
   * in its Synchronize or through CreateContainer.
   */
  blockSync(): Promise<() => void> {
    return this.sync.read();
  }

  async runPodSandbox(pod: PodSandbox): Promise<void> {
    this.stoppedPods.delete(pod.id ?? '');
    await this.notify('RunPodSandbox', Event.RunPodSandbox, { pod });
  }

  /** Relays StopPodSandbox once per pod, however often the pod is stopped. */
  async stopPodSandbox(pod: PodSandbox): Promise<void> {
    const id = pod.id ?? '';
    if (this.stoppedPods.has(id)) return;
    this.stoppedPods.add(id);
    await this.notify('StopPodSandbox', Event.StopPodSandbox, { pod });
  }

  /** Relays RemovePodSandbox, after StopPodSandbox unless the pod was stopped already (before a restart, say). */
  async removePodSandbox(pod: PodSandbox, stopped = false): Promise<void> {
    if (!stopped)
      await this.stopPodSandbox(pod).catch((err) => this.log.warn({ err: (err as Error).message, pod: pod.id }, 'NRI StopPodSandbox before removal failed'));
    this.stoppedPods.delete(pod.id ?? '');
    await this.notify('RemovePodSandbox', Event.RemovePodSandbox, { pod });
  }

  async updatePodSandbox(pod: PodSandbox, overhead: LinuxResources | null, resources: LinuxResources | null): Promise<void> {
    await this.notify('UpdatePodSandbox', Event.UpdatePodSandbox, { pod, overhead_linux_resources: overhead, linux_resources: resources });
  }

  async postUpdatePodSandbox(pod: PodSandbox): Promise<void> {
    await this.notify('PostUpdatePodSandbox', Event.PostUpdatePodSandbox, { pod });
  }

  /** Asks every subscribed plugin for adjustments to a container being created. */
  async createContainer(pod: PodSandbox, container: Container): Promise<CreateResult> {
    this.stoppedContainers.delete(container.id ?? '');
    return this.events.with(async () => {
      const collector = new CreateCollector(container);
      const consulted: Plugin[] = [];
      for (const plugin of this.subscribers(Event.CreateContainer)) {
        const answer = (await plugin.call('CreateContainer', codecs.CreateContainer.request, codecs.CreateContainer.response, {
          pod,
          container: collector.container,
        })) as CreateContainerResponse__Output | undefined;
        consulted.push(plugin);
        if (answer) collector.apply(plugin.label(), answer);
      }
      const result = collector.result();
      await this.validate(pod, container, result, consulted);
      return result;
    });
  }

  async postCreateContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.notify('PostCreateContainer', Event.PostCreateContainer, { pod, container });
  }

  async startContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.notify('StartContainer', Event.StartContainer, { pod, container });
  }

  async postStartContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.notify('PostStartContainer', Event.PostStartContainer, { pod, container });
  }

  /** Lets plugins change the resources a container is being updated to, and update others. */
  async updateContainer(
    pod: PodSandbox,
    container: Container,
    resources: LinuxResources,
  ): Promise<{ resources: LinuxResources; updates: ContainerUpdate[]; evictions: ContainerEviction[] }> {
    return this.events.with(async () => {
      const collector = new UpdateCollector(container.id ?? '', resources);
      for (const plugin of this.subscribers(Event.UpdateContainer)) {
        const answer = (await plugin.call('UpdateContainer', codecs.UpdateContainer.request, codecs.UpdateContainer.response, {
          pod,
          container,
          linux_resources: collector.resources,
        })) as UpdateContainerResponse__Output | undefined;
        if (answer) collector.apply(plugin.label(), answer);
      }
      return collector.result();
    });
  }

  async postUpdateContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.notify('PostUpdateContainer', Event.PostUpdateContainer, { pod, container });
  }

  /**
   * Relays StopContainer once per container, whether it was stopped or
   * exited; returns the updates plugins ask for other containers.
   */
  async stopContainer(pod: PodSandbox, container: Container): Promise<ContainerUpdate[]> {
    const id = container.id ?? '';
    if (this.stoppedContainers.has(id)) return [];
    this.stoppedContainers.add(id);
    return this.events.with(async () => {
      const updates = new Updates();
      for (const plugin of this.subscribers(Event.StopContainer)) {
        const answer = (await plugin.call('StopContainer', codecs.StopContainer.request, codecs.StopContainer.response, { pod, container })) as
          | StopContainerResponse__Output
          | undefined;
        if (answer) updates.add(answer.update, plugin.label());
      }
      return updates.list();
    });
  }

  async removeContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.stopContainer(pod, container).catch((err) =>
      this.log.warn({ err: (err as Error).message, container: container.id }, 'NRI StopContainer before removal failed'),
    );
    this.stoppedContainers.delete(container.id ?? '');
    await this.notify('RemoveContainer', Event.RemoveContainer, { pod, container });
  }

  /** For a creation that failed after CreateContainer: lets plugins release what they set aside. */
  async undoCreateContainer(pod: PodSandbox, container: Container): Promise<void> {
    await this.removeContainer(pod, container).catch((err) =>
      this.log.warn({ err: (err as Error).message, container: container.id }, 'NRI cleanup of a failed creation failed'),
    );
  }

  private subscribers(event: number): Plugin[] {
    return this.plugins.filter((p) => !p.isClosed() && p.isSubscribed(event));
  }

  /** Relays an event without adjustments; a plugin's error fails the event. */
  private async notify(method: Method, event: number, request: { pod: PodSandbox; container?: Container } & Record<string, unknown>): Promise<void> {
    if (this.plugins.length === 0) return;
    await this.events.with(async () => {
      for (const plugin of this.subscribers(event)) {
        try {
          await plugin.call(method, codecs[method].request, codecs[method].response, request);
        } catch (err) {
          if (!(err instanceof TtrpcError && err.code === Code.Unimplemented && NOTIFICATIONS.has(method))) throw err;
          // A plugin built before this event had its own method.
          await plugin.call('StateChange', codecs.StateChange.request, codecs.StateChange.response, {
            event: EVENT_ENUM_NAMES[event],
            pod: request.pod,
            container: request.container ?? null,
          });
        }
      }
    });
  }

  /** Asks validator plugins to accept or reject the adjustments collected for a creation. */
  private async validate(pod: PodSandbox, container: Container, result: CreateResult, consulted: Plugin[]): Promise<void> {
    const validators = this.subscribers(Event.ValidateContainerAdjustment);
    if (validators.length === 0) return;
    const request = {
      pod,
      container,
      adjust: result.adjust,
      update: result.updates,
      plugins: consulted.map((p) => ({ name: p.name, index: p.index })),
    };
    const answers = await Promise.all(
      validators.map(async (plugin) => ({
        plugin,
        answer: (await plugin.call(
          'ValidateContainerAdjustment',
          codecs.ValidateContainerAdjustment.request,
          codecs.ValidateContainerAdjustment.response,
          request,
        )) as ValidateContainerAdjustmentResponse__Output | undefined,
      })),
    );
    for (const { plugin, answer } of answers) {
      if (answer?.reject)
        throw new NriError('invalid-adjustment', `NRI validator ${plugin.label()} rejected the adjustments: ${answer.reason || 'no reason given'}`);
    }
  }

  private pluginOptions(): Omit<PluginOptions, 'launched'> {
    return {
      registrationTimeoutMs: this.settings.registration_timeout * 1000,
      requestTimeoutMs: this.settings.request_timeout * 1000,
      requests: { updateContainers: (plugin, updates, evictions) => this.pluginRequestedUpdates(plugin, updates, evictions) },
    };
  }

  private async startPreinstalled(): Promise<void> {
    const { plugins: found, problems } = await discoverPlugins(this.settings.plugin_path, this.settings.plugin_config_path);
    for (const problem of problems) this.log.warn({ problem }, 'NRI plugin skipped');
    const started: Plugin[] = [];
    for (const entry of found) {
      const label = `${entry.index}-${entry.name}`;
      try {
        const { process, socket } = await launchPlugin(entry, (line) => this.log.info({ plugin: label, line }, 'NRI plugin output'));
        const plugin = new Plugin(socket, { ...this.pluginOptions(), launched: { index: entry.index, name: entry.name, process, config: entry.config } });
        process.once('exit', () => plugin.close());
        await plugin.start('', this.identity);
        started.push(plugin);
      } catch (err) {
        this.log.warn({ plugin: label, err: (err as Error).message }, 'pre-installed NRI plugin did not start');
      }
    }
    if (started.length > 0) await this.synchronizeAndAdd(started);
  }

  private async listen(): Promise<void> {
    const path = this.settings.socket_path;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await rm(path, { force: true });
    const server = createServer((socket) => void this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // Root only: a plugin can adjust every container on the node.
    await chmod(path, 0o600);
    server.on('error', (err) => this.log.error({ err: err.message }, 'NRI socket failed'));
    this.server = server;
    this.log.info({ socket: path }, 'NRI plugins may connect');
  }

  private async accept(socket: Socket): Promise<void> {
    socket.on('error', () => undefined);
    if (this.stopping || this.plugins.length + this.connecting >= MAX_PLUGINS) {
      this.log.warn({ limit: MAX_PLUGINS }, 'NRI plugin connection refused: too many plugins');
      socket.destroy();
      return;
    }
    this.connecting++;
    const plugin = new Plugin(socket, this.pluginOptions());
    try {
      await plugin.start('', this.identity);
      await this.synchronizeAndAdd([plugin]);
    } catch (err) {
      plugin.close();
      this.log.warn({ plugin: plugin.label(), err: (err as Error).message }, 'NRI plugin not registered');
    } finally {
      this.connecting--;
    }
  }

  /** Synchronizes new plugins with the runtime's state and adds them to those invoked. */
  private async synchronizeAndAdd(plugins: Plugin[]): Promise<void> {
    const release = await this.sync.write();
    const updates: ContainerUpdate[] = [];
    try {
      const state = await this.runtime!.snapshot();
      for (const plugin of plugins) {
        try {
          const requested = await plugin.synchronize(state.pods, state.containers);
          const merged = new Updates();
          merged.add(requested, plugin.label());
          updates.push(...merged.list());
        } catch (err) {
          plugin.close();
          this.log.warn({ plugin: plugin.label(), err: (err as Error).message }, 'NRI plugin failed to synchronize');
          continue;
        }
        if (this.stopping) {
          plugin.close();
          continue;
        }
        this.add(plugin);
      }
    } finally {
      release();
    }
    if (updates.length > 0) await this.applyUpdates('Synchronize', updates);
  }

  private add(plugin: Plugin): void {
    plugin.onClose(() => {
      const before = this.plugins.length;
      this.plugins = this.plugins.filter((p) => p !== plugin);
      if (this.plugins.length !== before) this.log.info({ plugin: plugin.label() }, 'NRI plugin disconnected');
    });
    if (plugin.isClosed()) return;
    // Stable: plugins of equal index keep the order they arrived in.
    this.plugins = [...this.plugins, plugin].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
    this.log.info({ plugin: plugin.label(), launched: plugin.launched, order: this.pluginNames() }, 'NRI plugin registered');
  }

  private async pluginRequestedUpdates(plugin: string, requested: ContainerUpdateOut[], evictions: ContainerEvictionOut[]): Promise<ContainerUpdate[]> {
    const merged = new Updates();
    merged.add(requested, plugin);
    const failed = await this.applyUpdates(plugin, merged.list());
    if (evictions.length > 0) await this.runtime!.evictContainers(namedEvictions(evictions, plugin));
    return failed;
  }

  private async applyUpdates(source: string, updates: ContainerUpdate[]): Promise<ContainerUpdate[]> {
    const failed = await this.runtime!.updateContainers(updates);
    for (const update of failed) this.log.warn({ source, container: update.container_id }, 'NRI container update failed');
    return failed;
  }
}
