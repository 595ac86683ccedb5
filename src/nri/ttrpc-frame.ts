// ttrpc framing: every message on a ttrpc connection is a 10-byte header
// (payload length, stream id, message type, flags; big-endian) followed by the
// payload. The decoder holds at most one message in memory: a header that
// announces more than MAX_MESSAGE bytes is reported and its payload skipped
// without being buffered, as ttrpc itself does.

export const HEADER_LENGTH = 10;
/** ttrpc's limit on one message's payload. */
export const MAX_MESSAGE = 4 << 20;

export const MessageType = { Request: 1, Response: 2, Data: 3 } as const;

export const Flags = { RemoteClosed: 0x1, RemoteOpen: 0x2, NoData: 0x4 } as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

export function encodeHeader(header: FrameHeader): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LENGTH);
  buf.writeUInt32BE(header.length, 0);
  buf.writeUInt32BE(header.streamId, 4);
  buf.writeUInt8(header.type, 8);
  buf.writeUInt8(header.flags, 9);
  return buf;
}

export function decodeHeader(buf: Buffer): FrameHeader {
  return {
    length: buf.readUInt32BE(0),
    streamId: buf.readUInt32BE(4),
    type: buf.readUInt8(8),
    flags: buf.readUInt8(9),
  };
}

export interface FrameSink {
  /** A whole message arrived. */
  frame(header: FrameHeader, payload: Buffer): void;
  /** A message longer than MAX_MESSAGE was announced; its bytes are being skipped. */
  oversized(header: FrameHeader): void;
}

/** Reassembles ttrpc messages from a byte stream delivered in arbitrary pieces. */
export class FrameDecoder {
  private readonly sink: FrameSink;
  private header = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private current: FrameHeader | undefined;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private skipping = 0;

  constructor(sink: FrameSink) {
    this.sink = sink;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, chunk.length - offset);
        this.skipping -= n;
        offset += n;
        continue;
      }
      if (!this.current) {
        const n = Math.min(HEADER_LENGTH - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + n);
        this.headerFill += n;
        offset += n;
        if (this.headerFill < HEADER_LENGTH) return;
        this.headerFill = 0;
        const header = decodeHeader(this.header);
        if (header.length > MAX_MESSAGE) {
          this.skipping = header.length;
          this.sink.oversized(header);
          continue;
        }
        this.current = header;
        this.payload = Buffer.allocUnsafe(header.length);
        this.payloadFill = 0;
      }
      const payload = this.payload!;
      const n = Math.min(payload.length - this.payloadFill, chunk.length - offset);
      chunk.copy(payload, this.payloadFill, offset, offset + n);
      this.payloadFill += n;
      offset += n;
      if (this.payloadFill === payload.length) {
        const header = this.current;
        this.current = undefined;
        this.payload = undefined;
        this.sink.frame(header, payload);
      }
    }
    // A zero-length message whose header completes a chunk exactly.
    if (this.current && this.payload && this.payload.length === 0) {
      const header = this.current;
      this.current = undefined;
      this.payload = undefined;
      this.sink.frame(header, Buffer.alloc(0));
    }
  }

  /** Bytes held for a message not yet complete (for tests of the memory bound). */
  buffered(): number {
    return this.headerFill + (this.payload?.length ?? 0);
  }
}
