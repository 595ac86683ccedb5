// A server-side SPDY/3.1 session over one upgraded connection: parses frames,
// keeps the shared zlib contexts for header blocks, and exposes each stream
// the client opens as a Node Duplex. Backpressure is the socket's: a stream
// write completes only once the socket accepted the frame, and the socket
// stops being read while a stream's reader is behind. (The Go SPDY client
// used by kubelet and crictl neither sends nor honours WINDOW_UPDATE, so
// windows are advertised generously and acknowledged, never waited on.)
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { createDeflate, createInflate, constants, type Deflate, type Inflate } from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.ts';
import {
  FLAG_FIN,
  FrameType,
  HEADER_LENGTH,
  MAX_CONTROL_FRAME,
  MAX_HEADER_BLOCK,
  RstStatus,
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeHeaderBlock,
  dataFrame,
  goaway,
  parseSettings,
  ping,
  readFrames,
  rstStream,
  settings,
  synReply,
  windowUpdate,
  SETTINGS_INITIAL_WINDOW_SIZE,
  type Frame,
} from './frames.ts';

const MAX_DATA_CHUNK = 32 * 1024;
const WINDOW = 16 * 1024 * 1024;
/** Streams one session may have open at once; more are refused (REFUSED_STREAM). */
export const MAX_STREAMS = 256;
/** Frames parsed but not yet handled before the socket stops being read. */
const MAX_BACKLOG = 64;
const GOAWAY_PROTOCOL_ERROR = 1;

/**
 * Serialises one zlib context: each block in, a Z_SYNC_FLUSH, the produced
 * bytes out. An inflate whose output passes `limit` fails at once and the
 * context is destroyed, so a small block that inflates hugely (a zlib bomb)
 * costs at most the limit in memory.
 */
class ZlibContext {
  private readonly z: Inflate | Deflate;
  private readonly limit: number;
  private chunks: Buffer[] = [];
  private size = 0;
  private fail: ((err: Error) => void) | undefined;
  private broken: Error | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(z: Inflate | Deflate, limit = Infinity) {
    this.z = z;
    this.limit = limit;
    z.on('data', (chunk: Buffer) => {
      if (this.broken) return;
      this.size += chunk.length;
      if (this.size > this.limit) {
        this.break(new SpdyProtocolError(`SPDY header block inflates to more than ${this.limit} bytes`));
        return;
      }
      this.chunks.push(chunk);
    });
    z.on('error', (err: Error) => this.break(err));
  }

  process(input: Buffer): Promise<Buffer> {
    const run = () =>
      new Promise<Buffer>((resolve, reject) => {
        if (this.broken) return reject(this.broken);
        this.chunks = [];
        this.size = 0;
        this.fail = reject;
        this.z.write(input);
        this.z.flush(constants.Z_SYNC_FLUSH, () => {
          this.fail = undefined;
          if (this.broken) reject(this.broken);
          else resolve(Buffer.concat(this.chunks));
          this.chunks = [];
        });
      });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private break(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    this.chunks = [];
    this.fail?.(err);
    this.fail = undefined;
    this.z.destroy();
  }

  close(): void {
    this.z.close();
  }
}

export class SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: Record<string, string>;
  private readonly session: SpdySession;
  private replying: Promise<void> | undefined;
  remoteClosed = false;

  constructor(session: SpdySession, id: number, headers: Record<string, string>) {
    super({ allowHalfOpen: true });
    this.session = session;
    this.id = id;
    this.headers = headers;
    // A write after the connection went away fails; whoever uses the stream
    // may listen too, but an unlistened stream error must not end the daemon.
    this.on('error', () => undefined);
  }

  /** Accepts the stream (SYN_REPLY). */
  reply(headers: Record<string, string> = {}): Promise<void> {
    // Every write waits for the same reply, so DATA never precedes SYN_REPLY.
    this.replying ??= this.session.sendReply(this.id, headers);
    return this.replying;
  }

  override _read(): void {
    this.session.resumeReading();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.reply()
      .then(async () => {
        for (let offset = 0; offset < chunk.length; offset += MAX_DATA_CHUNK) {
          await this.session.send(dataFrame(this.id, 0, chunk.subarray(offset, offset + MAX_DATA_CHUNK)));
        }
      })
      .then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.reply()
      .then(() => this.session.send(dataFrame(this.id, FLAG_FIN, Buffer.alloc(0))))
      .then(
        () => callback(),
        () => callback(),
      );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.session.forget(this.id, Boolean(err));
    callback(err);
  }

  /** Data from the peer. */
  receive(data: Buffer, fin: boolean): void {
    if (data.length && !this.push(data)) this.session.pauseReading();
    if (fin) {
      this.remoteClosed = true;
      this.push(null);
    }
  }

  /** Aborts the stream for the peer too. */
  reset(): void {
    this.session.resetStream(this.id, RstStatus.CANCEL);
    this.destroy();
  }
}

export class SpdySession extends EventEmitter {
  private readonly socket: Duplex;
  private readonly inflate = new ZlibContext(createInflate({ dictionary: SPDY3_DICTIONARY }), MAX_HEADER_BLOCK);
  private readonly deflate = new ZlibContext(createDeflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly streams = new Map<number, SpdyStream>();
  /** Received bytes not yet parsed into frames, kept as chunks until a whole frame is in. */
  private received: Buffer[] = [];
  private receivedLength = 0;
  private lastStreamId = 0;
  private pending: Promise<void> = Promise.resolve();
  private backlog = 0;
  closed = false;

  constructor(socket: Duplex, head?: Buffer) {
    super();
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.shutdown());
    socket.on('end', () => this.shutdown());
    socket.on('error', () => this.shutdown());
    void this.send(settings([{ id: SETTINGS_INITIAL_WINDOW_SIZE, value: WINDOW }])).catch(() => undefined);
    if (head?.length) this.onData(head);
  }

  /** Writes raw frame bytes, resolving once the socket accepted them. */
  send(frame: Buffer): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.reject(new Error('the SPDY connection is closed'));
    return new Promise((resolve, reject) => {
      const ok = this.socket.write(frame, (err) => (err ? reject(err) : undefined));
      if (ok) resolve();
      else this.socket.once('drain', () => resolve());
    });
  }

  async sendReply(id: number, headers: Record<string, string>): Promise<void> {
    const block = await this.deflate.process(encodeHeaderBlock(headers));
    await this.send(synReply(id, 0, block));
  }

  resetStream(id: number, status: number): void {
    if (!this.closed) this.socket.write(rstStream(id, status));
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.closed && this.backlog < MAX_BACKLOG) this.socket.resume();
  }

  forget(id: number, _failed: boolean): void {
    this.streams.delete(id);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Ends the session: GOAWAY, then the connection closes once written. */
  close(): void {
    if (this.closed) return;
    this.socket.write(goaway(this.lastStreamId));
    this.socket.end();
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stream of this.streams.values()) stream.destroy();
    this.streams.clear();
    this.inflate.close();
    this.deflate.close();
    // What was written (a GOAWAY) goes out first; a peer that does not close
    // its side in time is cut off.
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
    if (this.socket.destroyed) clearTimeout(timer);
    this.emit('close');
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.received.push(chunk);
    this.receivedLength += chunk.length;
    // Parse only once a whole frame is in: a large frame arriving in many
    // chunks is joined once, not once per chunk.
    if (this.receivedLength < HEADER_LENGTH) return;
    if (this.received[0]!.length < HEADER_LENGTH) this.received = [Buffer.concat(this.received)];
    const first = this.received[0]!;
    const length = first.readUIntBE(5, 3);
    if (this.receivedLength < HEADER_LENGTH + length && !(first[0]! & 0x80 && length > MAX_CONTROL_FRAME)) return;
    const buffer = this.received.length === 1 ? first : Buffer.concat(this.received);
    let frames: Frame[];
    let rest: Buffer;
    try {
      ({ frames, rest } = readFrames(buffer));
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.received = rest.length ? [rest] : [];
    this.receivedLength = rest.length;
    // Header blocks are inflated asynchronously; frames are handled in order.
    for (const frame of frames) {
      this.backlog += 1;
      this.pending = this.pending
        .then(() => this.handle(frame))
        .catch((err) => this.fail(err as Error))
        .finally(() => {
          this.backlog -= 1;
          if (this.backlog === MAX_BACKLOG - 1) this.resumeReading();
        });
    }
    if (this.backlog >= MAX_BACKLOG) this.pauseReading();
  }

  /** An error ends the session; a protocol error is first answered with GOAWAY (PROTOCOL_ERROR). */
  private fail(err: Error): void {
    if (this.closed) return;
    this.emit('error', err);
    this.received = [];
    this.receivedLength = 0;
    if (err instanceof SpdyProtocolError && !this.socket.destroyed) this.socket.write(goaway(this.lastStreamId, GOAWAY_PROTOCOL_ERROR));
    this.shutdown();
  }

  private async handle(frame: Frame): Promise<void> {
    if (this.closed) return;
    if (frame.kind === 'data') {
      const stream = this.streams.get(frame.streamId);
      if (!stream) {
        this.resetStream(frame.streamId, RstStatus.INVALID_STREAM);
        return;
      }
      if (frame.data.length) {
        this.socket.write(windowUpdate(frame.streamId, frame.data.length));
        this.socket.write(windowUpdate(0, frame.data.length));
      }
      stream.receive(frame.data, (frame.flags & FLAG_FIN) !== 0);
      return;
    }
    const data = frame.data;
    switch (frame.type) {
      case FrameType.SYN_STREAM: {
        if (data.length < 10) throw new SpdyProtocolError('SYN_STREAM frame too short');
        const id = data.readUInt32BE(0) & 0x7fffffff;
        // Inflated even for a stream refused below: the zlib context is shared.
        const headers = decodeHeaderBlock(await this.inflate.process(data.subarray(10)));
        if (this.streams.has(id) || id <= this.lastStreamId) {
          this.resetStream(id, RstStatus.PROTOCOL_ERROR);
          return;
        }
        if (this.streams.size >= MAX_STREAMS) {
          this.lastStreamId = id;
          this.resetStream(id, RstStatus.REFUSED_STREAM);
          return;
        }
        this.lastStreamId = id;
        const stream = new SpdyStream(this, id, headers);
        this.streams.set(id, stream);
        if (frame.flags & FLAG_FIN) stream.receive(Buffer.alloc(0), true);
        this.emit('stream', stream);
        return;
      }
      case FrameType.HEADERS:
      case FrameType.SYN_REPLY:
        if (data.length < 4) throw new SpdyProtocolError('SPDY header frame too short');
        decodeHeaderBlock(await this.inflate.process(data.subarray(4)));
        return;
      case FrameType.RST_STREAM: {
        const stream = this.streams.get(data.readUInt32BE(0) & 0x7fffffff);
        stream?.destroy();
        return;
      }
      case FrameType.PING:
        this.socket.write(ping(data.readUInt32BE(0)));
        return;
      case FrameType.GOAWAY:
        this.shutdown();
        return;
      case FrameType.SETTINGS:
        parseSettings(data);
        return;
      default:
        return;
    }
  }
}
