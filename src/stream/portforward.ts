// Port forwarding: over SPDY (portforward.k8s.io: per connection the client
// opens an error and a data stream carrying `port` and `requestid` headers)
// and over WebSocket (channel form: per port a data and an error channel,
// each starting with the port number as two little-endian bytes).
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { SpdySession, SpdyStream } from './spdy/session.ts';
import { validPort } from './netns-dial.ts';
import { quote } from '../errors.ts';

export const PORTFORWARD_PROTOCOL = 'portforward.k8s.io';

export type Dial = (port: number, signal: AbortSignal) => Promise<Duplex>;

/** Serves port-forward requests on a SPDY session until the client closes it. */
export function servePortForwardSpdy(session: SpdySession, dial: Dial, podId: string): void {
  const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream }>();
  const controller = new AbortController();
  session.once('close', () => controller.abort());
  session.on('stream', (stream: SpdyStream) => {
    void stream.reply().catch(() => undefined);
    const requestId = stream.headers.requestid ?? '';
    const pair = pairs.get(requestId) ?? {};
    pairs.set(requestId, pair);
    if (stream.headers.streamtype === 'error') {
      pair.error = stream;
      stream.resume();
      return;
    }
    if (stream.headers.streamtype !== 'data') {
      stream.reset();
      return;
    }
    pair.data = stream;
    const port = Number(stream.headers.port);
    const fail = (message: string) => {
      pair.error?.end(message);
      stream.end();
      pairs.delete(requestId);
    };
    if (!validPort(port)) return fail(`invalid port ${quote(stream.headers.port)}`);
    dial(port, controller.signal).then(
      (conn) => {
        pipeBoth(stream, conn, () => {
          pair.error?.end();
          pairs.delete(requestId);
        });
      },
      (err) => fail(`error forwarding port ${port} to pod ${podId}: ${(err as Error).message}`),
    );
  });
}

/** Joins two duplexes both ways with backpressure; calls done once both are finished. */
export function pipeBoth(a: Duplex, b: Duplex, done: () => void): void {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    a.destroy();
    b.destroy();
    done();
  };
  a.pipe(b);
  b.pipe(a);
  let ended = 0;
  const onEnd = () => {
    ended += 1;
    if (ended === 2) setImmediate(finish);
  };
  a.once('end', onEnd);
  b.once('end', onEnd);
  a.on('error', finish);
  b.on('error', finish);
  a.once('close', () => setImmediate(finish));
  b.once('close', () => setImmediate(finish));
}

/** WebSocket port-forward: ports from the URL's ?port= query, channel 2i data and 2i+1 error. */
export async function servePortForwardWebSocket(ws: WebSocket, ports: number[], dial: Dial, podId: string): Promise<void> {
  const controller = new AbortController();
  ws.once('close', () => controller.abort());
  const conns: Array<Duplex | undefined> = [];
  const portBytes = (port: number) => Buffer.from([port & 0xff, port >> 8]);
  const send = (channel: number, data: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), data]));
  };
  ports.forEach((port, i) => {
    send(2 * i, portBytes(port));
    send(2 * i + 1, portBytes(port));
  });
  await Promise.all(
    ports.map(async (port, i) => {
      try {
        const conn = await dial(port, controller.signal);
        conns[i] = conn;
        conn.on('data', (chunk: Buffer) => {
          send(2 * i, chunk);
          // Backpressure: stop reading the pod while the client lags behind.
          if (ws.bufferedAmount > 4 * 1024 * 1024) {
            conn.pause();
            const wait = setInterval(() => {
              if (ws.bufferedAmount < 1024 * 1024 || ws.readyState !== ws.OPEN) {
                clearInterval(wait);
                conn.resume();
              }
            }, 10);
          }
        });
        conn.on('end', () => ws.close(1000));
        conn.on('error', () => undefined);
      } catch (err) {
        send(2 * i + 1, Buffer.from(`error forwarding port ${port} to pod ${podId}: ${(err as Error).message}`));
      }
    }),
  );
  ws.on('message', (message: Buffer) => {
    const channel = message[0]!;
    const conn = conns[channel >> 1];
    if (conn && channel % 2 === 0 && message.length > 1) conn.write(message.subarray(1));
  });
  ws.on('close', () => conns.forEach((c) => c?.destroy()));
}
