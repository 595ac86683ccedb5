// Prometheus metrics of the CRI server: call counts by RPC and status code,
// call latency histograms, errors, and the daemon's memory, served as text
// exposition format on [metrics] address when it is set.
import { createServer, type Server } from 'node:http';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private readonly calls = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();

  /** Records one finished call. */
  observe(rpc: string, code: string, seconds: number): void {
    const key = `${rpc}\u0000${code}`;
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
    let histogram = this.latency.get(rpc);
    if (!histogram) {
      histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(rpc, histogram);
    }
    BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) histogram.counts[i]! += 1;
    });
    histogram.sum += seconds;
    histogram.count += 1;
  }

  /** The Prometheus text exposition of everything recorded. */
  render(): string {
    const lines: string[] = [];
    lines.push('# HELP tscri_grpc_requests_total CRI calls served, by RPC and gRPC status code.');
    lines.push('# TYPE tscri_grpc_requests_total counter');
    for (const [key, value] of [...this.calls].sort()) {
      const [rpc, code] = key.split('\u0000');
      lines.push(`tscri_grpc_requests_total{rpc="${rpc}",code="${code}"} ${value}`);
    }
    lines.push('# HELP tscri_grpc_request_duration_seconds Latency of CRI calls, by RPC.');
    lines.push('# TYPE tscri_grpc_request_duration_seconds histogram');
    for (const [rpc, h] of [...this.latency].sort(([a], [b]) => a.localeCompare(b))) {
      BUCKETS.forEach((bound, i) => lines.push(`tscri_grpc_request_duration_seconds_bucket{rpc="${rpc}",le="${bound}"} ${h.counts[i]}`));
      lines.push(`tscri_grpc_request_duration_seconds_bucket{rpc="${rpc}",le="+Inf"} ${h.count}`);
      lines.push(`tscri_grpc_request_duration_seconds_sum{rpc="${rpc}"} ${h.sum}`);
      lines.push(`tscri_grpc_request_duration_seconds_count{rpc="${rpc}"} ${h.count}`);
    }
    const memory = process.memoryUsage();
    lines.push('# HELP tscri_process_resident_memory_bytes Resident memory of the daemon.');
    lines.push('# TYPE tscri_process_resident_memory_bytes gauge');
    lines.push(`tscri_process_resident_memory_bytes ${memory.rss}`);
    lines.push('# HELP tscri_process_heap_used_bytes V8 heap in use by the daemon.');
    lines.push('# TYPE tscri_process_heap_used_bytes gauge');
    lines.push(`tscri_process_heap_used_bytes ${memory.heapUsed}`);
    return lines.join('\n') + '\n';
  }
}

/** Serves GET /metrics on host:port; resolves with the bound port. */
export async function serveMetrics(metrics: Metrics, address: string): Promise<{ port: number; close(): Promise<void> }> {
  const at = address.lastIndexOf(':');
  if (at < 0) throw new Error(`metrics.address must be host:port, got ${address}`);
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found; metrics are at /metrics\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics.render());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  // Errors after the start (accept failing with EMFILE) must not end the daemon.
  server.on('error', () => undefined);
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound ? bound.port : port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
