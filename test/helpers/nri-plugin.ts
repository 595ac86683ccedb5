// A test NRI plugin speaking the protocol through tscri's own ttrpc and
// multiplexer modules: it registers, records every event it receives, and
// answers CreateContainer with the adjustment it was given (an env var, a
// mount, a cgroup limit...). Handlers may be replaced to fail or hang.
import { connect, type Socket } from 'node:net';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from '../../src/nri/mux.ts';
import { nriCodec } from '../../src/nri/proto.ts';
import { TtrpcClient, TtrpcServer, TtrpcError, Code, type Handler } from '../../src/nri/ttrpc.ts';
import { PLUGIN_SERVICE, RUNTIME_SERVICE } from '../../src/nri/plugin.ts';
import type { ContainerAdjustment, ContainerOut, ContainerUpdate, ContainerEviction, PodSandboxOut } from '../../src/nri/types.ts';

const c = (name: string) => nriCodec<object, any>(name);

const METHODS: Record<string, [string, string]> = {
  Configure: ['ConfigureRequest', 'ConfigureResponse'],
  Synchronize: ['SynchronizeRequest', 'SynchronizeResponse'],
  Shutdown: ['Empty', 'Empty'],
  RunPodSandbox: ['RunPodSandboxRequest', 'RunPodSandboxResponse'],
  StopPodSandbox: ['StopPodSandboxRequest', 'StopPodSandboxResponse'],
  RemovePodSandbox: ['RemovePodSandboxRequest', 'RemovePodSandboxResponse'],
  UpdatePodSandbox: ['UpdatePodSandboxRequest', 'UpdatePodSandboxResponse'],
  PostUpdatePodSandbox: ['PostUpdatePodSandboxRequest', 'PostUpdatePodSandboxResponse'],
  CreateContainer: ['CreateContainerRequest', 'CreateContainerResponse'],
  PostCreateContainer: ['PostCreateContainerRequest', 'PostCreateContainerResponse'],
  StartContainer: ['StartContainerRequest', 'StartContainerResponse'],
  PostStartContainer: ['PostStartContainerRequest', 'PostStartContainerResponse'],
  UpdateContainer: ['UpdateContainerRequest', 'UpdateContainerResponse'],
  PostUpdateContainer: ['PostUpdateContainerRequest', 'PostUpdateContainerResponse'],
  StopContainer: ['StopContainerRequest', 'StopContainerResponse'],
  RemoveContainer: ['RemoveContainerRequest', 'RemoveContainerResponse'],
  StateChange: ['StateChangeEvent', 'Empty'],
  ValidateContainerAdjustment: ['ValidateContainerAdjustmentRequest', 'ValidateContainerAdjustmentResponse'],
};

export interface Received {
  method: string;
  pod?: PodSandboxOut;
  container?: ContainerOut;
  request: any;
}

export type PluginHandler = (request: any, signal: AbortSignal) => Promise<object | undefined> | object | undefined;

export interface TestPluginOptions {
  name: string;
  index: string;
  /** Event mask for Configure; 0 subscribes to everything. */
  events?: number;
  /** Answered to CreateContainer unless a handler is given. */
  adjust?: ContainerAdjustment;
  update?: ContainerUpdate[];
  evict?: ContainerEviction[];
  handlers?: Record<string, PluginHandler>;
}

export class TestPlugin {
  readonly options: TestPluginOptions;
  readonly received: Received[] = [];
  config = '';
  synced: { pods: PodSandboxOut[]; containers: ContainerOut[] } | undefined;
  private mux: Mux | undefined;
  private runtime: TtrpcClient | undefined;
  private readonly waiters: (() => void)[] = [];
  closed: Promise<void> | undefined;

  constructor(options: TestPluginOptions) {
    this.options = options;
  }

  /** Connects to an NRI socket and registers; resolves once registered (not yet synchronized). */
  async connect(path: string): Promise<void> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await this.attach(socket);
  }

  /** Serves the plugin protocol on an already connected socket, then registers. */
  async attach(socket: Socket): Promise<void> {
    socket.on('error', () => undefined);
    const mux = (this.mux = new Mux(socket));
    this.closed = new Promise((resolve) => mux.onClose(() => resolve()));
    const handlers = new Map<string, Handler>();
    for (const [method, [req, res]] of Object.entries(METHODS)) {
      handlers.set(`${PLUGIN_SERVICE}/${method}`, async (payload, context) => {
        const request = c(req).decode(payload);
        this.received.push({ method, pod: request.pod ?? undefined, container: request.container ?? undefined, request });
        for (const wake of this.waiters.splice(0)) wake();
        const answer = await this.handle(method, request, context.signal);
        return c(res).encode(answer ?? {});
      });
    }
    new TtrpcServer(mux.open(PLUGIN_SERVICE_CONN), handlers);
    this.runtime = new TtrpcClient(mux.open(RUNTIME_SERVICE_CONN));
    await this.runtime.call(
      RUNTIME_SERVICE,
      'RegisterPlugin',
      c('RegisterPluginRequest').encode({ plugin_name: this.options.name, plugin_idx: this.options.index, NRI_version: 'v0.12.1' }),
      5000,
    );
  }

  /** Asks the runtime for unsolicited updates and evictions; resolves with those that failed. */
  async updateContainers(update: ContainerUpdate[], evict: ContainerEviction[] = []): Promise<ContainerUpdate[]> {
    const answer = await this.runtime!.call(RUNTIME_SERVICE, 'UpdateContainers', c('UpdateContainersRequest').encode({ update, evict }), 5000);
    return c('UpdateContainersResponse').decode(answer).failed;
  }

  methods(): string[] {
    return this.received.map((r) => r.method);
  }

  /** Resolves once a call of method has arrived (for container, if given). */
  async waitFor(method: string, containerId?: string, timeoutMs = 10000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find((r) => r.method === method && (!containerId || r.container?.id === containerId));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`plugin ${this.options.name} got no ${method}; got ${this.methods().join(', ')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    this.mux?.close();
  }

  private async handle(method: string, request: any, signal: AbortSignal): Promise<object | undefined> {
    const custom = this.options.handlers?.[method];
    if (custom) return custom(request, signal);
    switch (method) {
      case 'Configure':
        this.config = request.config;
        return { events: this.options.events ?? 0 };
      case 'Synchronize':
        this.synced = { pods: request.pods, containers: request.containers };
        return { update: [], more: request.more };
      case 'CreateContainer':
        return { adjust: this.options.adjust ?? {}, update: this.options.update ?? [], evict: this.options.evict ?? [] };
      case 'ValidateContainerAdjustment':
        return { reject: false };
      default:
        return {};
    }
  }
}

export function refuse(message: string): never {
  throw new TtrpcError(Code.Unknown, message);
}
