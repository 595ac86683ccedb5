// NRI's connection multiplexer: several logical byte streams over one socket.
// Each frame is an 8-byte header (connection id, payload length; big-endian)
// and the payload. NRI runs the plugin's ttrpc server on connection 1 and the
// runtime's ttrpc server on connection 2 of the same socket. Frames for
// connections nobody opened are skipped, as NRI does; a frame longer than the
// largest ttrpc message or a peer that stops reading closes the socket.
import type { Duplex } from 'node:stream';
import { HEADER_LENGTH, MAX_MESSAGE } from './ttrpc-frame.ts';

export const PLUGIN_SERVICE_CONN = 1;
export const RUNTIME_SERVICE_CONN = 2;

const MUX_HEADER = 8;
export const MAX_MUX_PAYLOAD = HEADER_LENGTH + MAX_MESSAGE;
/** Bytes queued towards a peer that does not read before it is given up on. */
const MAX_QUEUED_WRITES = 4 * MAX_MUX_PAYLOAD;

export class MuxError extends Error {}

export interface ByteChannel {
  write(data: Buffer): void;
  onData(handler: (chunk: Buffer) => void): void;
  onClose(handler: (err?: Error) => void): void;
  close(): void;
}

export class Mux {
  private readonly trunk: Duplex;
  private readonly conns = new Map<number, MuxConn>();
  private readonly header = Buffer.alloc(MUX_HEADER);
  private headerFill = 0;
  private target: MuxConn | undefined;
  private remaining = 0;
  private inPayload = false;
  private closedWith: Error | undefined;
  private closed = false;
  private readonly closeHandlers: ((err?: Error) => void)[] = [];

  constructor(trunk: Duplex) {
    this.trunk = trunk;
    trunk.on('data', (chunk: Buffer) => this.read(chunk));
    trunk.on('error', (err) => this.close(err));
    trunk.on('end', () => this.close());
    trunk.on('close', () => this.close());
  }

  /** The logical connection id; both ends open the same ids without signalling. */
  open(id: number): MuxConn {
    if (id === 0) throw new MuxError('connection id 0 is reserved');
    let conn = this.conns.get(id);
    if (!conn) {
      conn = new MuxConn(this, id);
      this.conns.set(id, conn);
      if (this.closed) conn.closed(this.closedWith);
    }
    return conn;
  }

  onClose(handler: (err?: Error) => void): void {
    if (this.closed) handler(this.closedWith);
    else this.closeHandlers.push(handler);
  }

  isClosed(): boolean {
    return this.closed;
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = err;
    this.trunk.destroy();
    for (const conn of this.conns.values()) conn.closed(err);
    for (const handler of this.closeHandlers.splice(0)) handler(err);
  }

  /** Sends data on a connection, split into frames the peer accepts. */
  write(id: number, data: Buffer): void {
    if (this.closed) return;
    let offset = 0;
    do {
      const part = data.subarray(offset, offset + MAX_MUX_PAYLOAD);
      const header = Buffer.allocUnsafe(MUX_HEADER);
      header.writeUInt32BE(id, 0);
      header.writeUInt32BE(part.length, 4);
      this.trunk.write(Buffer.concat([header, part]));
      offset += part.length;
    } while (offset < data.length);
    if (this.trunk.writableLength > MAX_QUEUED_WRITES) {
      this.close(new MuxError('peer does not read its connection'));
    }
  }

  forget(id: number, conn: MuxConn): void {
    if (this.conns.get(id) === conn) this.conns.delete(id);
  }

  private read(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.closed) {
      if (!this.inPayload) {
        const n = Math.min(MUX_HEADER - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + n);
        this.headerFill += n;
        offset += n;
        if (this.headerFill < MUX_HEADER) return;
        this.headerFill = 0;
        const id = this.header.readUInt32BE(0);
        const length = this.header.readUInt32BE(4);
        if (length > MAX_MUX_PAYLOAD) {
          this.close(new MuxError(`multiplexed frame of ${length} bytes exceeds the limit of ${MAX_MUX_PAYLOAD}`));
          return;
        }
        this.target = this.conns.get(id);
        this.remaining = length;
        this.inPayload = length > 0;
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - offset);
      // Delivered as it arrives: the consumer bounds what it keeps.
      if (this.target) this.target.deliver(chunk.subarray(offset, offset + n));
      this.remaining -= n;
      offset += n;
      if (this.remaining === 0) {
        this.inPayload = false;
        this.target = undefined;
      }
    }
  }
}

export class MuxConn implements ByteChannel {
  private readonly mux: Mux;
  readonly id: number;
  private dataHandler: ((chunk: Buffer) => void) | undefined;
  private readonly closeHandlers: ((err?: Error) => void)[] = [];
  private done = false;
  private doneWith: Error | undefined;

  constructor(mux: Mux, id: number) {
    this.mux = mux;
    this.id = id;
  }

  write(data: Buffer): void {
    if (!this.done) this.mux.write(this.id, data);
  }

  onData(handler: (chunk: Buffer) => void): void {
    this.dataHandler = handler;
  }

  onClose(handler: (err?: Error) => void): void {
    if (this.done) handler(this.doneWith);
    else this.closeHandlers.push(handler);
  }

  /** Detaches this connection; the socket and the other connections stay. */
  close(): void {
    this.mux.forget(this.id, this);
    this.closed();
  }

  deliver(chunk: Buffer): void {
    if (this.done || !this.dataHandler) return;
    try {
      this.dataHandler(chunk);
    } catch (err) {
      this.mux.close(err as Error);
    }
  }

  closed(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.doneWith = err;
    for (const handler of this.closeHandlers.splice(0)) handler(err);
  }
}
