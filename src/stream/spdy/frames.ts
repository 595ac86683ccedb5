// SPDY/3.1 frame encoding and decoding (no compression here: header blocks
// are passed in and out as raw bytes; see headers.ts).

export const VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
} as const;

export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
export const HEADER_LENGTH = 8;
export const MAX_FRAME_LENGTH = 0xffffff;
/** The most an inflated header block may hold (as Go's SPDY and HTTP/2 servers allow). */
export const MAX_HEADER_BLOCK = 256 * 1024;
/**
 * The largest control frame accepted. Every control frame but SYN_STREAM,
 * SYN_REPLY and HEADERS is a few bytes; those carry a compressed header block,
 * which is never larger than the block it inflates to, plus 10 bytes.
 */
export const MAX_CONTROL_FRAME = MAX_HEADER_BLOCK + 16;

/** A peer broke the protocol in a way that ends the whole session. */
export class SpdyProtocolError extends Error {}

export type Frame = { kind: 'data'; streamId: number; flags: number; data: Buffer } | { kind: 'control'; type: number; flags: number; data: Buffer };

/** Splits complete frames off the front of buf; returns them and the unused rest. */
export function readFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let offset = 0;
  while (buf.length - offset >= HEADER_LENGTH) {
    const length = buf.readUIntBE(offset + 5, 3);
    // Refused as soon as the header is in, before its payload is buffered.
    if (buf[offset]! & 0x80 && length > MAX_CONTROL_FRAME) {
      throw new SpdyProtocolError(`SPDY control frame of ${length} bytes exceeds the limit of ${MAX_CONTROL_FRAME}`);
    }
    if (buf.length - offset < HEADER_LENGTH + length) break;
    const flags = buf[offset + 4]!;
    const data = buf.subarray(offset + HEADER_LENGTH, offset + HEADER_LENGTH + length);
    if (buf[offset]! & 0x80) {
      const version = buf.readUInt16BE(offset) & 0x7fff;
      if (version !== VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
      frames.push({ kind: 'control', type: buf.readUInt16BE(offset + 2), flags, data });
    } else {
      frames.push({ kind: 'data', streamId: buf.readUInt32BE(offset) & 0x7fffffff, flags, data });
    }
    offset += HEADER_LENGTH + length;
  }
  return { frames, rest: buf.subarray(offset) };
}

export function controlFrame(type: number, flags: number, data: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt16BE(0x8000 | VERSION, 0);
  header.writeUInt16BE(type, 2);
  header[4] = flags;
  header.writeUIntBE(data.length, 5, 3);
  return Buffer.concat([header, data]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(streamId & 0x7fffffff, 0);
  header[4] = flags;
  header.writeUIntBE(data.length, 5, 3);
  return Buffer.concat([header, data]);
}

export function synStream(streamId: number, associatedId: number, flags: number, headerBlock: Buffer): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(associatedId & 0x7fffffff, 4);
  return controlFrame(FrameType.SYN_STREAM, flags, Buffer.concat([head, headerBlock]));
}

export function synReply(streamId: number, flags: number, headerBlock: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  return controlFrame(FrameType.SYN_REPLY, flags, Buffer.concat([head, headerBlock]));
}

export function rstStream(streamId: number, status: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(streamId & 0x7fffffff, 0);
  data.writeUInt32BE(status, 4);
  return controlFrame(FrameType.RST_STREAM, 0, data);
}

export function windowUpdate(streamId: number, delta: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(streamId & 0x7fffffff, 0);
  data.writeUInt32BE(delta & 0x7fffffff, 4);
  return controlFrame(FrameType.WINDOW_UPDATE, 0, data);
}

export function ping(id: number): Buffer {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(id >>> 0, 0);
  return controlFrame(FrameType.PING, 0, data);
}

export function goaway(lastGoodStreamId: number, status = 0): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(lastGoodStreamId & 0x7fffffff, 0);
  data.writeUInt32BE(status, 4);
  return controlFrame(FrameType.GOAWAY, 0, data);
}

export function settings(entries: Array<{ id: number; value: number; flags?: number }>): Buffer {
  const data = Buffer.alloc(4 + entries.length * 8);
  data.writeUInt32BE(entries.length, 0);
  entries.forEach((entry, i) => {
    data[4 + i * 8] = entry.flags ?? 0;
    data.writeUIntBE(entry.id, 5 + i * 8, 3);
    data.writeUInt32BE(entry.value >>> 0, 8 + i * 8);
  });
  return controlFrame(FrameType.SETTINGS, 0, data);
}

export function parseSettings(data: Buffer): Map<number, number> {
  const result = new Map<number, number>();
  const count = data.readUInt32BE(0);
  for (let i = 0; i < count && 4 + i * 8 + 8 <= data.length; i++) {
    result.set(data.readUIntBE(5 + i * 8, 3), data.readUInt32BE(8 + i * 8));
  }
  return result;
}

/** An uncompressed SPDY/3 name/value header block (names lowercased; NUL joins repeated values). */
export function encodeHeaderBlock(headers: Record<string, string | string[]>): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, value] of entries) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(Array.isArray(value) ? value.join('\0') : value, 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Reads a name/value block; a count or length that runs past its end is a protocol error. */
export function decodeHeaderBlock(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  const malformed = () => new SpdyProtocolError('malformed SPDY header block');
  if (block.length < 4) throw malformed();
  let offset = 4;
  const count = block.readUInt32BE(0);
  // Each entry takes at least 8 bytes: a count beyond that cannot be honest.
  if (count > (block.length - 4) / 8) throw malformed();
  const field = () => {
    if (offset + 4 > block.length) throw malformed();
    const length = block.readUInt32BE(offset);
    if (offset + 4 + length > block.length) throw malformed();
    const text = block.toString('utf8', offset + 4, offset + 4 + length);
    offset += 4 + length;
    return text;
  };
  for (let i = 0; i < count; i++) {
    const name = field();
    headers[name] = field();
  }
  return headers;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
