// One NRI plugin, connected over a socket: the runtime calls the plugin's
// ttrpc service on multiplexed connection 1 and serves its own (registration
// and unsolicited container updates) on connection 2. A plugin that breaks
// the protocol, disconnects or misses a deadline is closed; the owner of this
// object learns it through onClose and drops the plugin.
import type { ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { NriError } from './errors.ts';
import { VALID_EVENTS, checkPluginIndex, checkPluginName, subscribed } from './events.ts';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from './mux.ts';
import { nriCodec, type Codec } from './proto.ts';
import { CallTimeoutError, Code, ConnectionClosedError, OversizedMessageError, TtrpcClient, TtrpcError, TtrpcServer, type Handler } from './ttrpc.ts';
import type { ConfigureRequest, ConfigureRequest__Output } from '../generated/nri/pkg/api/v1alpha1/ConfigureRequest.ts';
import type { ConfigureResponse, ConfigureResponse__Output } from '../generated/nri/pkg/api/v1alpha1/ConfigureResponse.ts';
import type { Empty, Empty__Output } from '../generated/nri/pkg/api/v1alpha1/Empty.ts';
import type { RegisterPluginRequest, RegisterPluginRequest__Output } from '../generated/nri/pkg/api/v1alpha1/RegisterPluginRequest.ts';
import type { SynchronizeRequest, SynchronizeRequest__Output } from '../generated/nri/pkg/api/v1alpha1/SynchronizeRequest.ts';
import type { SynchronizeResponse, SynchronizeResponse__Output } from '../generated/nri/pkg/api/v1alpha1/SynchronizeResponse.ts';
import type { UpdateContainersRequest, UpdateContainersRequest__Output } from '../generated/nri/pkg/api/v1alpha1/UpdateContainersRequest.ts';
import type { UpdateContainersResponse, UpdateContainersResponse__Output } from '../generated/nri/pkg/api/v1alpha1/UpdateContainersResponse.ts';
import type { Container, ContainerEvictionOut, ContainerUpdate, ContainerUpdateOut, PodSandbox } from './types.ts';

export const PLUGIN_SERVICE = 'nri.pkg.api.v1alpha1.Plugin';
export const RUNTIME_SERVICE = 'nri.pkg.api.v1alpha1.Runtime';

const registerCodec = nriCodec<RegisterPluginRequest, RegisterPluginRequest__Output>('RegisterPluginRequest');
const emptyCodec = nriCodec<Empty, Empty__Output>('Empty');
const configureCodec = nriCodec<ConfigureRequest, ConfigureRequest__Output>('ConfigureRequest');
const configureResponseCodec = nriCodec<ConfigureResponse, ConfigureResponse__Output>('ConfigureResponse');
const syncCodec = nriCodec<SynchronizeRequest, SynchronizeRequest__Output>('SynchronizeRequest');
const syncResponseCodec = nriCodec<SynchronizeResponse, SynchronizeResponse__Output>('SynchronizeResponse');
const updateContainersCodec = nriCodec<UpdateContainersRequest, UpdateContainersRequest__Output>('UpdateContainersRequest');
const updateContainersResponseCodec = nriCodec<UpdateContainersResponse, UpdateContainersResponse__Output>('UpdateContainersResponse');

/** What a plugin may ask of the runtime on its own initiative. */
export interface PluginRequests {
  updateContainers(plugin: string, updates: ContainerUpdateOut[], evictions: ContainerEvictionOut[]): Promise<ContainerUpdate[]>;
}

export interface PluginOptions {
  registrationTimeoutMs: number;
  requestTimeoutMs: number;
  /** Set for a plugin the runtime started: its name and index come from its file name. */
  launched?: { index: string; name: string; process: ChildProcess; config: string };
  requests: PluginRequests;
}

export interface Identity {
  runtimeName: string;
  runtimeVersion: string;
  nriVersion: string;
}

/**
 * How much longer than request_timeout an answer is awaited: a plugin that
 * gives up waiting at its deadline (which ttrpc tells it, counted from when
 * it received the request) still answers in time.
 */
const ANSWER_GRACE_MS = 250;

/** Smallest number of pods and containers per Synchronize message when splitting. */
const MIN_SYNC_OBJECTS = 8;

export class Plugin {
  index = '';
  name = '';
  /** Events the plugin subscribed to. */
  events = 0;
  readonly launched: boolean;
  private readonly options: PluginOptions;
  private readonly mux: Mux;
  private readonly client: TtrpcClient;
  private readonly registered: Promise<void>;
  private closedWith: Error | undefined;
  private readonly closeHandlers: (() => void)[] = [];

  constructor(socket: Duplex, options: PluginOptions) {
    this.options = options;
    this.launched = options.launched !== undefined;
    if (options.launched) {
      this.index = options.launched.index;
      this.name = options.launched.name;
    }
    this.mux = new Mux(socket);
    this.client = new TtrpcClient(this.mux.open(PLUGIN_SERVICE_CONN));
    let onRegistered!: (err?: Error) => void;
    this.registered = new Promise<void>((resolve, reject) => (onRegistered = (err) => (err ? reject(err) : resolve())));
    this.registered.catch(() => undefined);
    const handlers = new Map<string, Handler>([
      [`${RUNTIME_SERVICE}/RegisterPlugin`, async (payload) => emptyCodec.encode(this.register(registerCodec.decode(payload), onRegistered))],
      [`${RUNTIME_SERVICE}/UpdateContainers`, async (payload) => this.updateContainers(payload)],
    ]);
    new TtrpcServer(this.mux.open(RUNTIME_SERVICE_CONN), handlers, { maxInFlight: 8 });
    this.mux.onClose((err) => {
      const reason = err ? `connection to NRI plugin ${this.label()} broke: ${err.message}` : `NRI plugin ${this.label()} disconnected`;
      onRegistered(new Error(reason));
      this.finish(new Error(reason));
    });
  }

  /** "NN-name", the plugin's name in logs and errors. */
  label(): string {
    return this.name ? `${this.index}-${this.name}` : 'unregistered plugin';
  }

  isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  onClose(handler: () => void): void {
    if (this.closedWith) handler();
    else this.closeHandlers.push(handler);
  }

  /** Waits for RegisterPlugin, then configures the plugin and learns its events. */
  async start(config: string, identity: Identity): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`NRI plugin did not register within ${this.options.registrationTimeoutMs} ms`)),
        this.options.registrationTimeoutMs,
      );
    });
    try {
      await Promise.race([this.registered, timeout]);
    } catch (err) {
      this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const answer = await this.call('Configure', configureCodec, configureResponseCodec, {
      config: this.options.launched?.config ?? config,
      runtime_name: identity.runtimeName,
      runtime_version: identity.runtimeVersion,
      registration_timeout: this.options.registrationTimeoutMs,
      request_timeout: this.options.requestTimeoutMs,
      NRI_version: identity.nriVersion,
    });
    if (!answer) throw new Error(`NRI plugin ${this.label()} disconnected during configuration`);
    const events = answer.events === 0 ? VALID_EVENTS : answer.events;
    if ((events & ~VALID_EVENTS) !== 0) {
      this.close();
      throw new Error(`NRI plugin ${this.label()} subscribed to unknown events 0x${(events & ~VALID_EVENTS).toString(16)}`);
    }
    this.events = events;
  }

  isSubscribed(event: number): boolean {
    return subscribed(this.events, event);
  }

  /**
   * Sends the runtime's pods and containers; returns the updates the plugin
   * asks for. State too large for one message goes in several, marked "more".
   */
  async synchronize(pods: PodSandbox[], containers: Container[]): Promise<ContainerUpdateOut[]> {
    let podsPerMessage = pods.length;
    let containersPerMessage = containers.length;
    let podsLeft = pods;
    let containersLeft = containers;
    for (;;) {
      const more = podsLeft.length > podsPerMessage || containersLeft.length > containersPerMessage;
      let answer: SynchronizeResponse__Output | undefined;
      try {
        answer = await this.call('Synchronize', syncCodec, syncResponseCodec, {
          pods: podsLeft.slice(0, podsPerMessage),
          containers: containersLeft.slice(0, containersPerMessage),
          more,
        });
      } catch (err) {
        if (!(err instanceof OversizedMessageError)) throw err;
        const total = podsPerMessage + containersPerMessage;
        if (total <= MIN_SYNC_OBJECTS)
          throw new NriError('plugin-failed', `cannot synchronize NRI plugin ${this.label()}: its state does not fit in ttrpc messages`);
        const factor = Math.min(0.9, (4 << 20) / err.length);
        podsPerMessage = Math.max(MIN_SYNC_OBJECTS / 2, Math.floor(podsPerMessage * factor));
        containersPerMessage = Math.max(MIN_SYNC_OBJECTS / 2, Math.floor(containersPerMessage * factor));
        continue;
      }
      if (!answer) throw new Error(`NRI plugin ${this.label()} disconnected during synchronization`);
      if (!more) return answer.update;
      if (answer.update.length > 0 || !answer.more) {
        this.close();
        throw new NriError('plugin-failed', `NRI plugin ${this.label()} does not handle Synchronize split in several messages`);
      }
      podsLeft = podsLeft.slice(podsPerMessage);
      containersLeft = containersLeft.slice(containersPerMessage);
      podsPerMessage = Math.min(podsPerMessage, podsLeft.length);
      containersPerMessage = Math.min(containersPerMessage, containersLeft.length);
    }
  }

  /**
   * Calls a method of the plugin. Resolves undefined when the plugin is gone
   * (it has no say in the event any more); throws an NriError naming the
   * plugin when it refuses or does not answer in time.
   */
  async call<Req, Res>(method: string, request: Codec<Req, unknown>, response: Codec<unknown, Res>, message: Req): Promise<Res | undefined> {
    if (this.closedWith) return undefined;
    let bytes: Buffer;
    try {
      bytes = await this.client.call(PLUGIN_SERVICE, method, request.encode(message), this.options.requestTimeoutMs, ANSWER_GRACE_MS);
    } catch (err) {
      if (err instanceof ConnectionClosedError) {
        this.close();
        return undefined;
      }
      if (err instanceof CallTimeoutError) {
        // Its answer can no longer count: a late one would act on stale state.
        this.close();
        throw new NriError('timeout', `NRI plugin ${this.label()} did not answer ${method} within ${this.options.requestTimeoutMs} ms and was disconnected`);
      }
      if (err instanceof OversizedMessageError) throw err;
      if (err instanceof TtrpcError) {
        if (err.code === Code.Unimplemented) throw err;
        throw new NriError('plugin-failed', `NRI plugin ${this.label()} failed ${method}: ${err.message}`);
      }
      throw err;
    }
    try {
      return response.decode(bytes);
    } catch (err) {
      this.close();
      throw new NriError('plugin-failed', `NRI plugin ${this.label()} answered ${method} with ${(err as Error).message}; it was disconnected`);
    }
  }

  /** Tells the plugin the runtime is shutting down, then closes it. */
  async shutdown(): Promise<void> {
    await this.call('Shutdown', emptyCodec, emptyCodec, {}).catch(() => undefined);
    this.close();
  }

  close(): void {
    this.mux.close();
    this.finish(new Error(`NRI plugin ${this.label()} closed`));
  }

  private finish(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    // A plugin the runtime started does not outlive its connection.
    this.options.launched?.process.kill('SIGKILL');
    for (const handler of this.closeHandlers.splice(0)) handler();
  }

  private register(request: RegisterPluginRequest__Output, done: (err?: Error) => void): Empty {
    if (this.launched) {
      done();
      return {};
    }
    const problem = checkPluginName(request.plugin_name) ?? checkPluginIndex(request.plugin_idx);
    if (problem) {
      done(new Error(`NRI plugin registration refused: ${problem}`));
      throw new TtrpcError(Code.InvalidArgument, problem);
    }
    if (this.name) throw new TtrpcError(Code.FailedPrecondition, `plugin already registered as ${this.label()}`);
    this.name = request.plugin_name;
    this.index = request.plugin_idx;
    done();
    return {};
  }

  private async updateContainers(payload: Buffer): Promise<Buffer> {
    if (!this.name || this.events === 0) throw new TtrpcError(Code.FailedPrecondition, 'plugin is not registered and configured');
    const request = updateContainersCodec.decode(payload);
    const failed = await this.options.requests.updateContainers(this.label(), request.update, request.evict);
    return updateContainersResponseCodec.encode({ failed });
  }
}
