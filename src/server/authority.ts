// Serving gRPC clients that send a unix socket path as the HTTP/2 :authority
// (kubelet before 1.26, crictl 1.26 and other grpc-go clients of that time
// send "/run/tscri/tscri.sock"). Node's HTTP/2 layer (nghttp2) resets such a
// stream before any handler sees it, so every accepted connection passes
// through a client-to-server frame filter first:
// - frames other than HEADERS/CONTINUATION pass through untouched, as they come;
// - each header block is decoded with the client's HPACK state, an :authority
//   (or host) that is not a valid host[:port] becomes "localhost", and the
//   block is re-encoded as plain literals that never use the server's dynamic
//   table (so the two HPACK states cannot diverge), in one HEADERS frame plus
//   CONTINUATION frames when it exceeds the 16384-byte frame size;
// - bytes from the server to the client pass through unchanged.
// A client that breaks the protocol gets the server's own error: its frames
// are forwarded as they are, or, for an undecodable header block, a block
// the server rejects with COMPRESSION_ERROR.
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from './hpack.ts';

export { writeInteger } from './hpack.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
/** SETTINGS_MAX_FRAME_SIZE: the HTTP/2 default, which the gRPC server keeps. */
const MAX_FRAME_SIZE = 16384;
/** Encoded size of one header block the filter collects before giving up on it. */
const MAX_BLOCK_SIZE = 1024 * 1024;

const TYPE_HEADERS = 0x1;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

export const REPLACEMENT_AUTHORITY = 'localhost';

const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+(?::[0-9]*)?$/;
const IP_LITERAL = /^\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\](?::[0-9]*)?$/;

/** Whether value is a host[:port] (reg-name, IPv4 or [IPv6]) as RFC 3986 allows in an authority. */
export function validAuthority(value: string): boolean {
  return REG_NAME.test(value) || IP_LITERAL.test(value);
}

/** Replaces each :authority or host that is not a valid host[:port]; returns how many. */
export function fixAuthority(fields: HeaderField[]): number {
  let fixed = 0;
  for (const field of fields) {
    if ((field.name === ':authority' || field.name === 'host') && !validAuthority(field.value)) {
      field.value = REPLACEMENT_AUTHORITY;
      fixed += 1;
    }
  }
  return fixed;
}

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return header;
}

/**
 * A header block as HEADERS + CONTINUATION frames of at most MAX_FRAME_SIZE,
 * PRIORITY data (if any) in the HEADERS frame, END_STREAM kept, no padding.
 */
export function headerFrames(stream: number, endStream: boolean, priority: Buffer | undefined, block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const first = MAX_FRAME_SIZE - (priority?.length ?? 0);
  let fragment = block.subarray(0, first);
  let rest = block.subarray(fragment.length);
  let flags = (endStream ? FLAG_END_STREAM : 0) | (priority ? FLAG_PRIORITY : 0) | (rest.length ? 0 : FLAG_END_HEADERS);
  const payload = priority ? [priority, fragment] : [fragment];
  out.push(frameHeader((priority?.length ?? 0) + fragment.length, TYPE_HEADERS, flags, stream), ...payload);
  while (rest.length) {
    fragment = rest.subarray(0, MAX_FRAME_SIZE);
    rest = rest.subarray(fragment.length);
    flags = rest.length ? 0 : FLAG_END_HEADERS;
    out.push(frameHeader(fragment.length, TYPE_CONTINUATION, flags, stream), fragment);
  }
  return out;
}

interface OpenBlock {
  stream: number;
  endStream: boolean;
  priority: Buffer | undefined;
  fragments: Buffer[];
  size: number;
  /** The frames as the client sent them, forwarded as they are if the client breaks the protocol. */
  raw: Buffer[];
}

/**
 * The client-to-server byte filter of one HTTP/2 connection: write() takes
 * bytes from the client and returns the bytes to give the server.
 */
export class AuthorityFilter {
  /** Authorities replaced so far. */
  replaced = 0;
  private readonly decoder: HpackDecoder;
  private mode: 'preface' | 'frames' | 'raw' = 'preface';
  /** Bytes received but not yet forwarded: less than a frame header or a header frame. */
  private buffered: Buffer = Buffer.alloc(0);
  /** Payload bytes of a pass-through frame still to forward as they come. */
  private passing = 0;
  private block: OpenBlock | undefined;

  constructor(options: { headerTableSize?: number } = {}) {
    this.decoder = new HpackDecoder({ limit: options.headerTableSize ?? 4096, maxListSize: MAX_BLOCK_SIZE });
  }

  write(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const data = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let offset = 0;
    for (;;) {
      const available = data.length - offset;
      if (available === 0) break;
      if (this.mode === 'raw') {
        out.push(data.subarray(offset));
        offset = data.length;
        break;
      }
      if (this.passing) {
        const n = Math.min(available, this.passing);
        out.push(data.subarray(offset, offset + n));
        offset += n;
        this.passing -= n;
        continue;
      }
      if (this.mode === 'preface') {
        const n = Math.min(available, PREFACE.length);
        // Not HTTP/2 with prior knowledge: leave the server to refuse it.
        if (!data.subarray(offset, offset + n).equals(PREFACE.subarray(0, n))) this.mode = 'raw';
        else if (n === PREFACE.length) {
          out.push(data.subarray(offset, offset + n));
          offset += n;
          this.mode = 'frames';
        } else break;
        continue;
      }
      if (available < FRAME_HEADER) break;
      const length = data.readUIntBE(offset, 3);
      const type = data[offset + 3]!;
      if (!this.block && type !== TYPE_HEADERS && type !== TYPE_CONTINUATION && type !== TYPE_PUSH_PROMISE) {
        out.push(data.subarray(offset, offset + FRAME_HEADER));
        offset += FRAME_HEADER;
        this.passing = length;
        continue;
      }
      if (length > MAX_FRAME_SIZE) {
        // Larger than the server accepts: it answers FRAME_SIZE_ERROR.
        this.giveUp(out);
        continue;
      }
      if (available < FRAME_HEADER + length) break;
      const frame = data.subarray(offset, offset + FRAME_HEADER + length);
      offset += frame.length;
      this.onHeaderFrame(frame, out);
    }
    // Copy the rest so a small remainder does not pin a large chunk.
    this.buffered = offset === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(offset));
    return out;
  }

  /** The client closed its side: forward what is left as it is. */
  end(): Buffer[] {
    const out: Buffer[] = [];
    if (this.block) out.push(...this.block.raw);
    if (this.buffered.length) out.push(this.buffered);
    this.block = undefined;
    this.buffered = Buffer.alloc(0);
    this.mode = 'raw';
    return out;
  }

  private onHeaderFrame(frame: Buffer, out: Buffer[]): void {
    const type = frame[3]!;
    const flags = frame[4]!;
    const stream = frame.readUInt32BE(5) & 0x7fffffff;
    const payload = frame.subarray(FRAME_HEADER);
    let block = this.block;
    if (block) {
      // Only CONTINUATION frames of the same stream may follow an open header block.
      if (type !== TYPE_CONTINUATION || stream !== block.stream) return this.giveUp(out, frame);
      block.raw.push(frame);
    } else {
      if (type !== TYPE_HEADERS || stream === 0) return this.giveUp(out, frame);
      let start = 0;
      let end = payload.length;
      if (flags & FLAG_PADDED) {
        if (payload.length < 1) return this.giveUp(out, frame);
        end -= payload[0]!;
        start = 1;
      }
      let priority: Buffer | undefined;
      if (flags & FLAG_PRIORITY) {
        priority = payload.subarray(start, start + 5);
        start += 5;
      }
      if (start > end) return this.giveUp(out, frame);
      block = { stream, endStream: (flags & FLAG_END_STREAM) !== 0, priority, fragments: [], size: 0, raw: [frame] };
      this.block = block;
      block.fragments.push(payload.subarray(start, end));
      block.size += end - start;
    }
    if (type === TYPE_CONTINUATION) {
      block.fragments.push(payload);
      block.size += payload.length;
    }
    if (block.size > MAX_BLOCK_SIZE) return this.refuseBlock(out, block.stream);
    if (flags & FLAG_END_HEADERS) this.finishBlock(block, out);
  }

  private finishBlock(block: OpenBlock, out: Buffer[]): void {
    this.block = undefined;
    const encoded = block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments);
    let fields: HeaderField[];
    try {
      fields = this.decoder.decode(encoded);
    } catch (err) {
      if (!(err instanceof HpackError)) throw err;
      return this.refuseBlock(out, block.stream);
    }
    this.replaced += fixAuthority(fields);
    // Copy the priority data: the frame it came from is not kept.
    const priority = block.priority && Buffer.from(block.priority);
    out.push(...headerFrames(block.stream, block.endStream, priority, encodeLiterals(fields)));
  }

  /**
   * The client's header compression state is lost: send the server a block
   * it cannot decode either (index 0), so it ends the connection with
   * COMPRESSION_ERROR, and forward the rest untouched.
   */
  private refuseBlock(out: Buffer[], stream: number): void {
    this.block = undefined;
    out.push(frameHeader(1, TYPE_HEADERS, FLAG_END_HEADERS, stream), Buffer.from([0x80]));
    this.mode = 'raw';
  }

  /** A framing error: forward the client's frames as they are, so the server answers PROTOCOL_ERROR. */
  private giveUp(out: Buffer[], frame?: Buffer): void {
    if (this.block) out.push(...this.block.raw);
    if (frame) out.push(frame);
    this.block = undefined;
    this.mode = 'raw';
  }
}

/**
 * The socket as a stream whose incoming bytes have passed the filter; the
 * gRPC server reads and writes it like the socket itself.
 */
export function filterConnection(socket: Socket): Duplex {
  const filter = new AuthorityFilter();
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  // One push per chunk read: each push is a separate call into the HTTP/2 session.
  const forward = (chunks: Buffer[]) => {
    if (chunks.length === 0) return;
    if (!duplex.push(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))) socket.pause();
  };
  socket.on('data', (chunk: Buffer) => forward(filter.write(chunk)));
  socket.on('end', () => {
    forward(filter.end());
    duplex.push(null);
  });
  // Socket errors (a client gone away) end the connection, as on a plain listener.
  socket.on('error', () => duplex.destroy());
  socket.on('close', () => duplex.destroy());
  return duplex;
}

/** A listener whose connections reach the gRPC server through the filter; call listen() on it. */
export function filteredListener(server: grpc.Server): NetServer {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return createServer((socket) => injector.injectConnection(filterConnection(socket)));
}
