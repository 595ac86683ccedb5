// The streaming server kubelet and crictl connect to after Exec, Attach and
// PortForward: single-use token URLs, the SPDY/3.1 upgrade with protocol
// negotiation, and WebSocket (channel protocols, port-forward, and SPDY
// tunnelled in WebSocket).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { Logger } from '../log.ts';
import { metrics } from '../metrics.ts';
import type { StreamBackend } from './backend.ts';
import { TokenCache, type StreamRequest } from './tokens.ts';
import { SpdySession } from './spdy/session.ts';
import { REMOTECOMMAND_PROTOCOLS, collectStreams, endStream, expectedStreams, streamIO } from './remotecommand.ts';
import { PORTFORWARD_PROTOCOL, PORTFORWARD_WEBSOCKET_PROTOCOLS, queryPorts, servePortForwardSpdy, servePortForwardWebSocket } from './portforward.ts';
import { WEBSOCKET_PROTOCOLS, webSocketSession } from './websocket.ts';
import { errorChannelPayload } from './status.ts';
import { quote } from '../errors.ts';
import { createServer as createHttpServer } from '../sys/http.ts';

export interface StreamServerOptions {
  address: string;
  port: number;
  tlsCert: string;
  tlsKey: string;
  tokenTimeoutSeconds: () => number;
}

const SPDY_TUNNEL = 'SPDY/3.1+portforward.k8s.io';
const MAX_MESSAGE = 16 * 1024 * 1024 + 8;

export class StreamServer {
  private readonly options: StreamServerOptions;
  private readonly backend: StreamBackend;
  private readonly log: Logger;
  private readonly tokens: TokenCache;
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // One message holds at most one SPDY frame (tunnelled port-forward) or
    // one chunk of a channel; anything larger is closed with 1009.
    maxPayload: MAX_MESSAGE,
  });
  /** The subprotocol chosen for each upgrade in flight ('' for none). */
  private readonly chosenProtocols = new WeakMap<IncomingMessage, string>();
  private server: Server | undefined;
  private baseUrl = '';
  private readonly sockets = new Set<Duplex>();

  constructor(options: StreamServerOptions, backend: StreamBackend, log: Logger) {
    this.options = options;
    this.backend = backend;
    this.log = log.child({ component: 'stream' });
    this.tokens = new TokenCache(() => options.tokenTimeoutSeconds() * 1000);
    this.wss.on('error', (err) => this.log.warn({ err: String(err) }, 'WebSocket server error'));
    this.wss.on('headers', (headers, req) => {
      const protocol = this.chosenProtocols.get(req);
      if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    });
  }

  async start(): Promise<string> {
    const tls = Boolean(this.options.tlsCert && this.options.tlsKey);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    const server = tls
      ? createHttpsServer({ cert: readFileSync(this.options.tlsCert), key: readFileSync(this.options.tlsKey) }, handler)
      : createHttpServer(handler);
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.address, () => resolve());
    });
    // Later errors (accept failing with EMFILE, say) must not end the daemon.
    server.on('error', (err) => this.log.warn({ err: String(err) }, 'streaming server error'));
    this.server = server;
    const bound = server.address();
    const port = typeof bound === 'object' && bound ? bound.port : this.options.port;
    const host = this.options.address.includes(':') ? `[${this.options.address}]` : this.options.address;
    this.baseUrl = `${tls ? 'https' : 'http'}://${host}:${port}`;
    return this.baseUrl;
  }

  /** Stores the request behind a new token and returns the URL the client connects to. */
  prepare(request: StreamRequest): string {
    return `${this.baseUrl}/${request.kind}/${this.tokens.put(request)}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.wss.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private lookup(req: IncomingMessage): { request?: StreamRequest; error?: [number, string]; url: URL } {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const match = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (!match) return { error: [404, 'not found: streaming URLs look like /exec/TOKEN, /attach/TOKEN or /portforward/TOKEN'], url };
    const request = this.tokens.take(match[2]!);
    if (!request || request.kind !== match[1])
      return { error: [404, 'this streaming URL is unknown, was already used, or has expired; call Exec, Attach or PortForward again'], url };
    return { request, url };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { error } = this.lookup(req);
    const [code, message] = error ?? [400, 'this URL needs a SPDY/3.1 or WebSocket upgrade'];
    res.writeHead(code, { 'content-type': 'text/plain' }).end(`${message}\n`);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const { request, error, url } = this.lookup(req);
    if (!request) return refuse(socket, error![0], error![1]);
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') return this.upgradeWebSocket(req, socket, head, request, url);
    if (upgrade !== 'spdy/3.1') return refuse(socket, 400, `unsupported upgrade ${quote(req.headers.upgrade ?? '')}; use SPDY/3.1 or websocket`);
    const offered = headerList(req.headers['x-stream-protocol-version']);
    const supported = request.kind === 'portforward' ? [PORTFORWARD_PROTOCOL] : REMOTECOMMAND_PROTOCOLS;
    const protocol = offered.length ? offered.find((p) => supported.includes(p)) : request.kind === 'portforward' ? PORTFORWARD_PROTOCOL : 'channel.k8s.io';
    if (!protocol) {
      return refuse(socket, 403, `none of the requested stream protocols ${offered.join(', ')} is supported; supported: ${supported.join(', ')}`, {
        'X-Accepted-Stream-Protocol-Versions': supported.join(', '),
      });
    }
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: SPDY/3.1'];
    if (offered.length) lines.push(`X-Stream-Protocol-Version: ${protocol}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const session = new SpdySession(socket, head);
    session.on('error', (err) => this.log.debug({ err: String(err) }, 'SPDY connection error'));
    session.once('close', metrics.openSession(request.kind, 'spdy'));
    this.serveSpdy(session, protocol, request);
  }

  private serveSpdy(session: SpdySession, protocol: string, request: StreamRequest): void {
    if (request.kind === 'portforward') {
      servePortForwardSpdy(session, (port, signal) => this.backend.portForward(request.podSandboxId, port, signal), request.podSandboxId);
      return;
    }
    void this.runCommandSpdy(session, protocol, request).catch((err) => {
      this.log.warn({ err: String(err) }, `${request.kind} stream failed`);
      session.close();
    });
  }

  private async runCommandSpdy(session: SpdySession, protocol: string, request: Exclude<StreamRequest, { kind: 'portforward' }>): Promise<void> {
    const streams = await collectStreams(session, expectedStreams(protocol, request));
    const io = streamIO(streams, request.tty);
    const controller = new AbortController();
    session.once('close', () => controller.abort());
    const { exitCode, error } = await this.run(request, io, controller.signal);
    await Promise.all([endStream(io.stdout), endStream(io.stderr)]);
    const payload = errorChannelPayload(protocol, exitCode, request.kind === 'exec' ? request.cmd : [], error);
    const errorStream = streams.get('error');
    if (payload && errorStream && !errorStream.destroyed) errorStream.write(payload);
    await endStream(errorStream);
    session.close();
  }

  private async run(
    request: Exclude<StreamRequest, { kind: 'portforward' }>,
    io: import('./backend.ts').StreamIO,
    signal: AbortSignal,
  ): Promise<{ exitCode?: number; error?: string }> {
    try {
      if (request.kind === 'exec') return { exitCode: await this.backend.exec(request.containerId, request.cmd, io, signal) };
      await this.backend.attach(request.containerId, io, signal);
      return { exitCode: 0 };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  private upgradeWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, request: StreamRequest, url: URL): void {
    const offered = headerList(req.headers['sec-websocket-protocol']);
    const supported = request.kind === 'portforward' ? [SPDY_TUNNEL, ...PORTFORWARD_WEBSOCKET_PROTOCOLS] : WEBSOCKET_PROTOCOLS;
    // A client that offers no subprotocol gets the binary channel protocol, as from kubelet.
    const protocol = offered.length ? offered.find((p) => supported.includes(p)) : '';
    if (protocol === undefined) {
      return refuse(socket, 403, `none of the requested WebSocket protocols ${offered.join(', ')} is supported; supported: ${supported.join(', ')}`);
    }
    // ws refuses subprotocols that are not RFC 7230 tokens, and
    // SPDY/3.1+portforward.k8s.io is not one (the "/"): the choice is made
    // here and the response header added in the 'headers' event.
    delete req.headers['sec-websocket-protocol'];
    this.chosenProtocols.set(req, protocol);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // A frame that breaks RFC 6455 (ws closes the stream with 1002, or 1007
      // for text that is not UTF-8) is an error of this stream only.
      ws.on('error', (err) => this.log.debug({ err: String(err), kind: request.kind }, 'WebSocket stream closed on a protocol error'));
      ws.once('close', metrics.openSession(request.kind, 'websocket'));
      if (request.kind === 'portforward') return this.portForwardWebSocket(ws, protocol, request, url);
      void this.runCommandWebSocket(ws, protocol || 'channel.k8s.io', request);
    });
  }

  private portForwardWebSocket(ws: WebSocket, protocol: string, request: Extract<StreamRequest, { kind: 'portforward' }>, url: URL): void {
    const dial = (port: number, signal: AbortSignal) => this.backend.portForward(request.podSandboxId, port, signal);
    if (protocol === SPDY_TUNNEL) {
      // SPDY frames carried in binary messages (client-go's tunneling
      // connection): the same session as over a plain upgrade.
      const tunnel = createWebSocketStream(ws);
      tunnel.on('error', () => undefined);
      const session = new SpdySession(tunnel);
      session.on('error', (err) => this.log.debug({ err: String(err) }, 'tunnelled SPDY connection error'));
      servePortForwardSpdy(session, dial, request.podSandboxId);
      return;
    }
    const ports = queryPorts(url);
    const chosen = ports?.length ? ports : request.ports;
    if (!ports || !chosen.length) {
      ws.close(1008, 'give the ports to forward as ?port=N');
      return;
    }
    servePortForwardWebSocket(ws, protocol, chosen, dial, request.podSandboxId);
  }

  private async runCommandWebSocket(ws: WebSocket, protocol: string, request: Exclude<StreamRequest, { kind: 'portforward' }>): Promise<void> {
    const session = webSocketSession(ws, protocol, request);
    const controller = new AbortController();
    ws.once('close', () => controller.abort());
    const { exitCode, error } = await this.run(request, session.io, controller.signal);
    await Promise.all([endStream(session.io.stdout), endStream(session.io.stderr)]);
    await session.finish(errorChannelPayload(protocol.replace('base64.', ''), exitCode, request.kind === 'exec' ? request.cmd : [], error));
  }
}

function headerList(value: string | string[] | undefined): string[] {
  const values = Array.isArray(value) ? value : value ? [value] : [];
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

function refuse(socket: Duplex, code: number, message: string, headers: Record<string, string> = {}): void {
  const reason = code === 403 ? 'Forbidden' : code === 404 ? 'Not Found' : 'Bad Request';
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n${extra}\r\n${message}\n`,
  );
}
