// The daemon's Prometheus metrics (prom-client), in one registry. Labels are
// kept to small fixed sets (RPC names, gRPC codes, states, commands, plugin
// types): never an id, a name or an image reference. The services record
// into `metrics`, the daemon's instance; the HTTP endpoint is in
// server/metrics.ts. README "Metrics" lists every name.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const RPC_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const PULL_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const EXEC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Counts of objects by state, read when the metrics are scraped. */
export interface StateSource {
  pods(): Promise<Record<string, number>>;
  containers(): Record<string, number>;
}

export const POD_STATES = ['ready', 'notready'];
export const CONTAINER_STATES = ['created', 'running', 'exited', 'unknown'];
export const STREAM_KINDS = ['exec', 'attach', 'portforward'];

export class Metrics {
  readonly registry = new Registry();
  private source: StateSource | undefined;

  readonly grpcRequests = new Counter({
    name: 'tscri_grpc_requests_total',
    help: 'CRI calls served, by RPC and gRPC status code.',
    labelNames: ['rpc', 'code'],
    registers: [this.registry],
  });
  readonly grpcDuration = new Histogram({
    name: 'tscri_grpc_request_duration_seconds',
    help: 'Latency of CRI calls, by RPC.',
    labelNames: ['rpc'],
    buckets: RPC_BUCKETS,
    registers: [this.registry],
  });

  readonly imagePulls = new Counter({
    name: 'tscri_image_pulls_total',
    help: 'Image pulls from registries, by result (success or failure); pulls shared by concurrent callers count once.',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly imagePullFailures = new Counter({
    name: 'tscri_image_pull_failures_total',
    help: 'Failed image pulls, by reason (the gRPC status code the pull answered).',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly imagePullBytes = new Counter({
    name: 'tscri_image_pull_bytes_total',
    help: 'Bytes of manifests-referenced blobs (configs and layers) received from registries.',
    registers: [this.registry],
  });
  readonly imagePullDuration = new Histogram({
    name: 'tscri_image_pull_duration_seconds',
    help: 'Duration of image pulls, by result.',
    labelNames: ['result'],
    buckets: PULL_BUCKETS,
    registers: [this.registry],
  });
  readonly imagePullsInFlight = new Gauge({ name: 'tscri_image_pulls_in_flight', help: 'Image pulls under way.', registers: [this.registry] });

  readonly streamSessions = new Counter({
    name: 'tscri_stream_sessions_total',
    help: 'Streaming sessions (exec, attach, port-forward) opened on the streaming server, by kind and protocol (spdy or websocket).',
    labelNames: ['kind', 'protocol'],
    registers: [this.registry],
  });
  readonly streamSessionsActive = new Gauge({
    name: 'tscri_stream_sessions_active',
    help: 'Streaming sessions open now, by kind.',
    labelNames: ['kind'],
    registers: [this.registry],
  });

  readonly cniDuration = new Histogram({
    name: 'tscri_cni_plugin_duration_seconds',
    help: 'Duration of CNI plugin invocations, by command (ADD, DEL), plugin type and result (ok or error).',
    labelNames: ['command', 'plugin', 'result'],
    buckets: EXEC_BUCKETS,
    registers: [this.registry],
  });
  readonly runtimeDuration = new Histogram({
    name: 'tscri_oci_runtime_duration_seconds',
    help: 'Duration of OCI runtime (runc) invocations, by command and result (ok or error); create is conmon running the runtime until the container exists.',
    labelNames: ['command', 'result'],
    buckets: EXEC_BUCKETS,
    registers: [this.registry],
  });

  private processMetrics = false;

  constructor() {
    const self = this;
    new Gauge({
      name: 'tscri_pods',
      help: 'Pod sandboxes known to tscri, by state (ready or notready).',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const counts = (await self.source?.pods()) ?? {};
        for (const state of POD_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'tscri_containers',
      help: 'Containers known to tscri, by state (created, running, exited, unknown).',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = self.source?.containers() ?? {};
        for (const state of CONTAINER_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'tscri_process_resident_memory_bytes',
      help: 'Resident memory of the daemon.',
      registers: [this.registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: 'tscri_process_heap_used_bytes',
      help: 'V8 heap in use by the daemon.',
      registers: [this.registry],
      collect() {
        this.set(process.memoryUsage().heapUsed);
      },
    });
    // Known label values start at zero, so a rate() has a series from the first scrape.
    for (const result of ['success', 'failure']) {
      this.imagePulls.inc({ result }, 0);
    }
    for (const kind of STREAM_KINDS) this.streamSessionsActive.set({ kind }, 0);
  }

  /**
   * Adds the standard process metrics: process_cpu_seconds_total,
   * process_resident_memory_bytes, process_open_fds, process_start_time_seconds,
   * nodejs_* (event loop lag, heap spaces, GC). The daemon turns them on once.
   */
  collectProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the pod and container counts come from (the daemon's services). */
  setStateSource(source: StateSource): void {
    this.source = source;
  }

  /** Records one finished CRI call. */
  observe(rpc: string, code: string, seconds: number): void {
    this.grpcRequests.inc({ rpc, code });
    this.grpcDuration.observe({ rpc }, seconds);
  }

  /** Times fn into a histogram with a result label (ok or error). */
  async time<T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
    const end = histogram.startTimer(labels);
    try {
      const value = await fn();
      end({ result: 'ok' });
      return value;
    } catch (err) {
      end({ result: 'error' });
      throw err;
    }
  }

  /** Counts a streaming session while it is open; call the returned function when it ends. */
  openSession(kind: string, protocol: string): () => void {
    this.streamSessions.inc({ kind, protocol });
    this.streamSessionsActive.inc({ kind });
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.streamSessionsActive.dec({ kind });
    };
  }

  /** The Prometheus text exposition format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** The daemon's metrics, which every service records into. */
export const metrics = new Metrics();
