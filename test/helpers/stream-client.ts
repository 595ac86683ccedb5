// A streaming client for tests that speaks what client-go speaks: the SPDY/3.1
// upgrade with remotecommand channel streams or port-forward stream pairs,
// and the WebSocket channel protocols.
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createDeflate, createInflate, constants } from 'node:zlib';
import { WebSocket } from 'ws';
import { SPDY3_DICTIONARY } from '../../src/stream/spdy/dictionary.ts';
import { FLAG_FIN, FrameType, dataFrame, decodeHeaderBlock, encodeHeaderBlock, readFrames, synStream } from '../../src/stream/spdy/frames.ts';

export interface UpgradeResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  socket?: Socket;
  body?: string;
}

/** Sends the HTTP upgrade request; resolves with the 101 socket or the refusal. */
export function upgrade(url: string, upgradeTo: string, protocols: string[]): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: { Connection: 'Upgrade', Upgrade: upgradeTo, 'X-Stream-Protocol-Version': protocols },
    });
    req.on('upgrade', (res, socket, head) => {
      if (head.length) socket.unshift(head);
      resolve({ status: res.statusCode!, headers: res.headers, socket: socket as Socket });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

class Zlib {
  private chunks: Buffer[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly z: ReturnType<typeof createDeflate> | ReturnType<typeof createInflate>;
  constructor(z: ReturnType<typeof createDeflate> | ReturnType<typeof createInflate>) {
    this.z = z;
    z.on('data', (c: Buffer) => this.chunks.push(c));
  }
  process(input: Buffer): Promise<Buffer> {
    const run = () =>
      new Promise<Buffer>((resolve) => {
        this.chunks = [];
        this.z.write(input);
        this.z.flush(constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(this.chunks)));
      });
    const p = this.queue.then(run);
    this.queue = p;
    return p;
  }
  close() {
    this.z.close();
  }
}

export interface ClientStream {
  id: number;
  data: Buffer[];
  ended: Promise<void>;
  replied: Promise<void>;
  text(): string;
  write(data: Buffer | string): Promise<void>;
  end(): Promise<void>;
}

/** The client side of a SPDY session: opens streams, collects what the server sends. */
export class SpdyClient {
  private readonly socket: Duplex;
  private readonly deflate = new Zlib(createDeflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly inflate = new Zlib(createInflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly streams = new Map<number, ClientStream & { finish(): void; reply(): void }>();
  private nextId = 1;
  private buffer: Buffer = Buffer.alloc(0);
  private chain: Promise<unknown> = Promise.resolve();
  readonly closed: Promise<void>;

  constructor(socket: Duplex) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      const { frames, rest } = readFrames(Buffer.concat([this.buffer, chunk]));
      this.buffer = rest;
      for (const frame of frames) this.chain = this.chain.then(() => this.handle(frame)).catch(() => undefined);
    });
    socket.on('close', () => {
      // Frames already received are still being decoded; streams end after them.
      void this.chain.then(() => {
        for (const s of this.streams.values()) s.finish();
        this.deflate.close();
        this.inflate.close();
      });
    });
  }

  private async handle(frame: ReturnType<typeof readFrames>['frames'][number]): Promise<void> {
    if (frame.kind === 'data') {
      const s = this.streams.get(frame.streamId);
      if (!s) return;
      if (frame.data.length) s.data.push(Buffer.from(frame.data));
      if (frame.flags & FLAG_FIN) s.finish();
      return;
    }
    if (frame.type === FrameType.SYN_REPLY) {
      decodeHeaderBlock(await this.inflate.process(frame.data.subarray(4)));
      this.streams.get(frame.data.readUInt32BE(0) & 0x7fffffff)?.reply();
    }
    if (frame.type === FrameType.RST_STREAM) this.streams.get(frame.data.readUInt32BE(0) & 0x7fffffff)?.finish();
  }

  async open(headers: Record<string, string>): Promise<ClientStream> {
    const id = this.nextId;
    this.nextId += 2;
    let finish!: () => void;
    let reply!: () => void;
    const ended = new Promise<void>((resolve) => (finish = resolve));
    const replied = new Promise<void>((resolve) => (reply = resolve));
    const stream = {
      id,
      data: [] as Buffer[],
      ended,
      replied,
      finish,
      reply,
      text: () => Buffer.concat(stream.data).toString('utf8'),
      write: async (data: Buffer | string) => {
        this.socket.write(dataFrame(id, 0, Buffer.from(data)));
      },
      end: async () => {
        this.socket.write(dataFrame(id, FLAG_FIN, Buffer.alloc(0)));
      },
    };
    this.streams.set(id, stream);
    const block = await this.deflate.process(encodeHeaderBlock(headers));
    this.socket.write(synStream(id, 0, 0, block));
    return stream;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a WebSocket with the given subprotocols; collects messages per channel. */
export function openWebSocket(url: string, protocols: string[]): Promise<{ ws: WebSocket; channels: Map<number, Buffer[]>; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const channels = new Map<number, Buffer[]>();
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (message: Buffer, isBinary: boolean) => {
      const buf = isBinary ? message : Buffer.from(message.toString());
      const channel = isBinary ? buf[0]! : buf[0]! - 48;
      const data = isBinary ? buf.subarray(1) : Buffer.from(buf.subarray(1).toString(), 'base64');
      const list = channels.get(channel) ?? [];
      list.push(Buffer.from(data));
      channels.set(channel, list);
    });
    ws.once('open', () => resolve({ ws, channels, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

export interface RawWebSocket {
  status: number;
  /** The response head (status line and headers). */
  head: string;
  socket: Socket;
  /** Frames the server sent so far (unmasked, as a server sends them). */
  frames: Array<{ opcode: number; payload: Buffer }>;
  /** Resolves when the connection is closed; with the close code the server sent, if any. */
  closed: Promise<number | undefined>;
  /** Called for each frame from the server, in order (frames already received included). */
  onFrame(listener: (frame: { opcode: number; payload: Buffer }) => void): void;
}

/**
 * A WebSocket handshake over a plain TCP socket, so a test can send frames no
 * well-behaved client library would (see wsFrame).
 */
export function rawWebSocket(url: string, protocols: string[]): Promise<RawWebSocket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
    socket.once('error', reject);
    socket.once('connect', () => {
      const lines = [
        `GET ${u.pathname}${u.search} HTTP/1.1`,
        `Host: ${u.host}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
      ];
      if (protocols.length) lines.push(`Sec-WebSocket-Protocol: ${protocols.join(', ')}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let buffer = Buffer.alloc(0);
    let result: RawWebSocket | undefined;
    let frameListeners: Array<(frame: { opcode: number; payload: Buffer }) => void> = [];
    let closeCode: number | undefined;
    let onClosed!: (code: number | undefined) => void;
    const closed = new Promise<number | undefined>((r) => (onClosed = r));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!result) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        const listeners: Array<(frame: { opcode: number; payload: Buffer }) => void> = [];
        result = {
          status: Number(head.split(' ')[1]),
          head,
          socket,
          frames: [],
          closed,
          onFrame(listener) {
            listeners.push(listener);
            for (const f of this.frames) listener(f);
          },
        };
        frameListeners = listeners;
        resolve(result);
        if (result.status !== 101) return;
      }
      if (result.status !== 101) return;
      for (;;) {
        const parsed = parseServerFrame(buffer);
        if (!parsed) break;
        buffer = buffer.subarray(parsed.size);
        const frame = { opcode: parsed.opcode, payload: parsed.payload };
        result.frames.push(frame);
        for (const l of frameListeners) l(frame);
        if (parsed.opcode === 8 && parsed.payload.length >= 2) closeCode ??= parsed.payload.readUInt16BE(0);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!result) reject(new Error('the server closed the connection during the handshake'));
      onClosed(closeCode);
    });
  });
}

function parseServerFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined;
  let length = buf[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return undefined;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return undefined;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  if (buf.length < offset + length) return undefined;
  return { opcode: buf[0]! & 0x0f, payload: Buffer.from(buf.subarray(offset, offset + length)), size: offset + length };
}

/**
 * One WebSocket frame as a client sends it, with every field under the test's
 * control: `length` overrides the encoded payload length form (126 or 127
 * force the extended forms), `mask: false` leaves it unmasked.
 */
export function wsFrame(options: { opcode: number; payload?: Buffer; fin?: boolean; rsv?: number; mask?: boolean; length?: 126 | 127 }): Buffer {
  const payload = options.payload ?? Buffer.alloc(0);
  const mask = options.mask ?? true;
  const first = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | options.opcode;
  const form = options.length ?? (payload.length < 126 ? 0 : payload.length < 65536 ? 126 : 127);
  let header: Buffer;
  if (form === 0) header = Buffer.from([first, (mask ? 0x80 : 0) | payload.length]);
  else if (form === 126) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (mask ? 0x80 : 0) | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (mask ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  if (!mask) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([header, key, masked]);
}

/**
 * A SPDY header block (deflated with the SPDY dictionary) of about
 * `compressedBytes` that inflates to about 1000 times that: zeros, whose
 * compressed form repeats once the window is full of them.
 */
export async function zlibBomb(compressedBytes: number): Promise<Buffer> {
  const deflate = createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const flushOnce = (input: Buffer) =>
    new Promise<Buffer>((resolve) => {
      chunks.length = 0;
      deflate.write(input);
      deflate.flush(constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(chunks)));
    });
  const zeros = Buffer.alloc(1024 * 1024);
  const head = await flushOnce(zeros);
  const repeat = await flushOnce(zeros);
  deflate.close();
  const count = Math.max(1, Math.ceil((compressedBytes - head.length) / repeat.length));
  return Buffer.concat([head, ...Array.from({ length: count }, () => repeat)]);
}

/**
 * The byte stream carried in a WebSocket's binary messages, as client-go's
 * tunneling connection sees it: each write is one binary message.
 */
export function webSocketTunnel(raw: RawWebSocket): Duplex {
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, callback) {
      raw.socket.write(wsFrame({ opcode: 0x2, payload: chunk }), callback);
    },
    final(callback) {
      raw.socket.end(wsFrame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe8]) }), callback);
    },
    destroy(err, callback) {
      raw.socket.destroy();
      callback(err);
    },
  });
  raw.onFrame((frame) => {
    if (frame.opcode === 0x2) duplex.push(frame.payload);
    if (frame.opcode === 0x8) duplex.push(null);
  });
  raw.socket.once('close', () => duplex.destroy());
  return duplex;
}
