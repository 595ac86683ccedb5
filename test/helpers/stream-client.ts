// A streaming client for tests that speaks what client-go speaks: the SPDY/3.1
// upgrade with remotecommand channel streams or port-forward stream pairs,
// and the WebSocket channel protocols.
import { request } from 'node:http';
import type { Socket } from 'node:net';
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
    const run = () => new Promise<Buffer>((resolve) => {
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
  private readonly socket: Socket;
  private readonly deflate = new Zlib(createDeflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly inflate = new Zlib(createInflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly streams = new Map<number, ClientStream & { finish(): void; reply(): void }>();
  private nextId = 1;
  private buffer: Buffer = Buffer.alloc(0);
  private chain: Promise<unknown> = Promise.resolve();
  readonly closed: Promise<void>;

  constructor(socket: Socket) {
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
