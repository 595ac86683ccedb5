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

/** The WebSocket subprotocols of the channel form of port-forward; '' is a client that offers none. */
export const PORTFORWARD_WEBSOCKET_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io', PORTFORWARD_PROTOCOL];

const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;

/**
 * WebSocket port-forward in the channel form kubelet serves: ports from the
 * URL's ?port= query (repeated or comma-separated), channel 2i carries the
 * data of port i and 2i+1 its errors, each first sent the port as two
 * little-endian bytes. Binary messages, or text with the channel as a digit
 * and base64 data for the base64 protocol. Data the client sends while its
 * port is still being dialed in the pod is kept and delivered once connected.
 */
export function servePortForwardWebSocket(ws: WebSocket, protocol: string, ports: number[], dial: Dial, podId: string): void {
  const base64 = protocol.includes('base64');
  const controller = new AbortController();
  const send = (channel: number, data: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(base64 ? String.fromCharCode(48 + channel) + data.toString('base64') : Buffer.concat([Buffer.from([channel]), data]));
  };
  interface Port {
    conn?: Duplex;
    /** What the client sent before the connection was up. */
    early: Buffer[];
    done: boolean;
  }
  const state: Port[] = ports.map(() => ({ early: [], done: false }));
  const finishPort = (i: number) => {
    state[i]!.done = true;
    state[i]!.early = [];
    if (state.every((p) => p.done) && ws.readyState === ws.OPEN) ws.close(1000);
  };
  // Listening before any dial: nothing the client sends right away is lost.
  ws.on('message', (message: Buffer | string, isBinary: boolean) => {
    let channel: number;
    let data: Buffer;
    if (base64 || !isBinary) {
      const text = message.toString();
      channel = text.charCodeAt(0) - 48;
      data = Buffer.from(text.slice(1), 'base64');
    } else {
      const buf = message as Buffer;
      channel = buf[0]!;
      data = buf.subarray(1);
    }
    const port = state[channel >> 1];
    if (!port || channel % 2 !== 0 || !data.length || port.done) return;
    if (!port.conn) {
      port.early.push(Buffer.from(data));
      // Too much before the pod answered: stop reading until it does.
      if (port.early.reduce((n, b) => n + b.length, 0) > HIGH_WATER) ws.pause();
      return;
    }
    if (!port.conn.write(data)) {
      ws.pause();
      port.conn.once('drain', () => ws.resume());
    }
  });
  ws.on('close', () => {
    controller.abort();
    for (const p of state) p.conn?.destroy();
  });
  ports.forEach((port, i) => {
    const portBytes = Buffer.from([port & 0xff, port >> 8]);
    send(2 * i, portBytes);
    send(2 * i + 1, portBytes);
  });
  ports.forEach((port, i) => {
    dial(port, controller.signal).then(
      (conn) => {
        const p = state[i]!;
        if (controller.signal.aborted) {
          conn.destroy();
          return;
        }
        p.conn = conn;
        for (const chunk of p.early) conn.write(chunk);
        p.early = [];
        ws.resume();
        conn.on('data', (chunk: Buffer) => {
          send(2 * i, chunk);
          // Backpressure: stop reading the pod while the client lags behind.
          if (ws.bufferedAmount > HIGH_WATER) {
            conn.pause();
            const wait = setInterval(() => {
              if (ws.bufferedAmount < LOW_WATER || ws.readyState !== ws.OPEN) {
                clearInterval(wait);
                conn.resume();
              }
            }, 10);
          }
        });
        conn.on('error', () => undefined);
        conn.once('close', () => finishPort(i));
        conn.once('end', () => finishPort(i));
      },
      (err) => {
        send(2 * i + 1, Buffer.from(`error forwarding port ${port} to pod ${podId}: ${(err as Error).message}`));
        finishPort(i);
      },
    );
  });
}

/** Ports from ?port= (repeated or comma-separated); undefined when one is not a port. */
export function queryPorts(url: URL): number[] | undefined {
  const values = url.searchParams.getAll('port').flatMap((v) => v.split(','));
  const ports = values.map((v) => (/^\d{1,5}$/.test(v.trim()) ? Number(v.trim()) : NaN));
  return ports.every((p) => validPort(p)) ? ports : undefined;
}
