// The Prometheus endpoint: GET /metrics on [metrics] address, when it is set,
// serves the daemon's registry (src/metrics.ts) in the text exposition format.
import type { Server } from 'node:http';
import type { Metrics } from '../metrics.ts';
import { createServer } from '../sys/http.ts';

export { Metrics } from '../metrics.ts';

/** Serves GET /metrics on host:port; resolves with the bound port. */
export async function serveMetrics(
  metrics: Metrics,
  address: string,
  onError: (err: unknown) => void = () => undefined,
): Promise<{ port: number; close(): Promise<void> }> {
  const at = address.lastIndexOf(':');
  if (at < 0) throw new Error(`metrics.address must be host:port, got ${address}`);
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found; metrics are at /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err) => {
        onError(err);
        res.writeHead(500).end('cannot collect the metrics; see the daemon log\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound ? bound.port : port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
