// HPACK (RFC 7541), as much as a proxy in front of an HTTP/2 server needs:
// a decoder that follows one peer's header compression state (static table,
// dynamic table with size updates, integers, string literals, Huffman) and an
// encoder that writes fields as plain literals which never touch the
// receiver's dynamic table. Header names and values are latin1 strings, so
// every byte survives a round trip.
import { HUFFMAN } from './hpack-huffman.ts';

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed": intermediaries must keep it out of their tables. */
  sensitive: boolean;
}

/** A header block that cannot be decoded: a connection error (COMPRESSION_ERROR). */
export class HpackError extends Error {
  override name = 'HpackError';
}

/** The static table (RFC 7541 Appendix A); index 1 is STATIC[0]. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Static table index of each name (its first entry), for encoding names compactly. */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/** The per-entry overhead the table size counts (RFC 7541 section 4.1). */
const ENTRY_OVERHEAD = 32;
/** Integers above this are no size or index a sane peer sends. */
const MAX_INTEGER = 2 ** 32;

// ---- Huffman ----------------------------------------------------------------

const EOS_CODE = 0x3fffffff;
const EOS_LENGTH = 30;

/**
 * The Huffman code as a binary tree in a flat array: node n has children
 * TREE[2n] (bit 0) and TREE[2n+1] (bit 1); a child >= 0 is a node, a child
 * < 0 is the leaf of symbol -child-1 (256 = EOS), 0 (the root) means no code.
 */
const TREE = buildTree();

function buildTree(): Int32Array {
  const codes = [...HUFFMAN, { length: EOS_LENGTH, code: EOS_CODE }];
  const tree = new Int32Array(2 * 2 * codes.length);
  let nodes = 1;
  codes.forEach(({ length, code }, symbol) => {
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (bit === 0) {
        if (tree[slot] !== 0) throw new Error(`Huffman table: code of symbol ${symbol} collides`);
        tree[slot] = -symbol - 1;
      } else {
        if (tree[slot]! < 0) throw new Error(`Huffman table: code of symbol ${symbol} extends another`);
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot]!;
      }
    }
  });
  return tree;
}

/** Decodes a Huffman-coded string (RFC 7541 section 5.2), checking its padding. */
export function huffmanDecode(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(Math.floor((bytes.length * 8) / 5));
  let length = 0;
  let node = 0;
  // Bits read since the last symbol, and whether all were 1: the padding
  // must be a prefix of EOS (all ones) shorter than 8 bits.
  let pending = 0;
  let ones = true;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      const next = TREE[2 * node + b]!;
      pending += 1;
      ones &&= b === 1;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === 256) throw new HpackError('Huffman string contains EOS');
        out[length++] = symbol;
        node = 0;
        pending = 0;
        ones = true;
      } else {
        node = next;
      }
    }
  }
  if (pending > 7 || !ones) throw new HpackError('Huffman string has invalid padding');
  return out.subarray(0, length);
}

/** Huffman-codes a string (used by tests and tools that need client-like blocks). */
export function huffmanEncode(bytes: Uint8Array): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    const { length, code } = HUFFMAN[byte]!;
    for (let bit = length - 1; bit >= 0; bit--) {
      acc = (acc << 1) | ((code >>> bit) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits) out.push(((acc << (8 - bits)) | (0xff >> bits)) & 0xff);
  return Buffer.from(out);
}

// ---- primitives -------------------------------------------------------------

/** Reads an integer with an N-bit prefix at offset (RFC 7541 section 5.1); returns [value, next offset]. */
export function readInteger(buf: Uint8Array, offset: number, prefixBits: number): [number, number] {
  if (offset >= buf.length) throw new HpackError('header block ends inside an integer');
  const max = (1 << prefixBits) - 1;
  let value = buf[offset]! & max;
  offset += 1;
  if (value < max) return [value, offset];
  for (let shift = 0; ; shift += 7) {
    if (offset >= buf.length) throw new HpackError('header block ends inside an integer');
    const byte = buf[offset++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (value > MAX_INTEGER) throw new HpackError('integer out of range');
    if (!(byte & 0x80)) return [value, offset];
  }
}

/** Writes an integer with an N-bit prefix; firstByteFlags fills the bits above the prefix. */
export function writeInteger(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const bytes = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function readString(buf: Uint8Array, offset: number): [string, number] {
  const huffman = offset < buf.length && (buf[offset]! & 0x80) !== 0;
  const [length, start] = readInteger(buf, offset, 7);
  const end = start + length;
  if (end > buf.length) throw new HpackError('header block ends inside a string');
  const raw = buf.subarray(start, end);
  const bytes = huffman ? huffmanDecode(raw) : raw;
  return [Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1'), end];
}

// ---- decoder ----------------------------------------------------------------

/** One peer's header compression state, as its receiver keeps it. */
export class HpackDecoder {
  /** Newest entry last. */
  private entries: Array<readonly [string, string]> = [];
  private size = 0;
  private maxSize: number;
  private readonly limit: number;
  private readonly maxListSize: number;

  /**
   * limit: the SETTINGS_HEADER_TABLE_SIZE the receiver allows (the peer may
   * shrink the table below it, never grow it past it); maxListSize bounds the
   * decoded size of one header block (name + value + 32 per field), so a few
   * bytes of references cannot expand into megabytes.
   */
  constructor(options: { limit?: number; maxListSize?: number } = {}) {
    this.limit = options.limit ?? 4096;
    this.maxSize = this.limit;
    this.maxListSize = options.maxListSize ?? 1024 * 1024;
  }

  /** Entries in the dynamic table and their total size, for tests. */
  get tableSize(): number {
    return this.size;
  }
  get tableLength(): number {
    return this.entries.length;
  }

  /** Decodes one complete header block, updating the dynamic table. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let offset = 0;
    while (offset < block.length) {
      const first = block[offset]!;
      let field: HeaderField;
      if (first & 0x80) {
        // Indexed header field.
        const [index, next] = readInteger(block, offset, 7);
        offset = next;
        const [name, value] = this.lookup(index);
        field = { name, value, sensitive: false };
      } else if ((first & 0xe0) === 0x20) {
        // Dynamic table size update: only before the first field of a block.
        const [size, next] = readInteger(block, offset, 5);
        offset = next;
        if (fields.length) throw new HpackError('table size update after a header field');
        if (size > this.limit) throw new HpackError(`table size update to ${size} exceeds the allowed ${this.limit}`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        // Literal: with incremental indexing (01), without indexing (0000) or never indexed (0001).
        const indexing = (first & 0xc0) === 0x40;
        const [nameIndex, afterIndex] = readInteger(block, offset, indexing ? 6 : 4);
        let name: string;
        let value: string;
        offset = afterIndex;
        if (nameIndex === 0) [name, offset] = readString(block, offset);
        else name = this.lookup(nameIndex)[0];
        [value, offset] = readString(block, offset);
        field = { name, value, sensitive: !indexing && (first & 0x10) !== 0 };
        if (indexing) this.insert(name, value);
      }
      listSize += field.name.length + field.value.length + ENTRY_OVERHEAD;
      if (listSize > this.maxListSize) throw new HpackError(`header list larger than ${this.maxListSize} bytes`);
      fields.push(field);
    }
    return fields;
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0 is not a header field');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[this.entries.length - (index - STATIC_TABLE.length)];
    if (!entry) throw new HpackError(`index ${index} is past the dynamic table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (RFC 7541 section 4.4).
    this.evict(size);
    if (size <= this.maxSize) {
      this.entries.push([name, value]);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until room bytes fit under the maximum size. */
  private evict(room: number): void {
    let drop = 0;
    while (drop < this.entries.length && this.size + room > this.maxSize) {
      const [name, value] = this.entries[drop++]!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop) this.entries.splice(0, drop);
  }
}

// ---- encoder ----------------------------------------------------------------

/**
 * Encodes fields as literals without indexing (never indexed for sensitive
 * ones), names by static table index where one exists, strings without
 * Huffman: the receiver's dynamic table is never used or changed.
 */
export function encodeLiterals(fields: readonly HeaderField[]): Buffer {
  // Sized first and written into one buffer: this runs for every request.
  let size = 0;
  for (const { name, value } of fields) {
    const nameIndex = STATIC_NAME_INDEX.get(name);
    size += nameIndex !== undefined ? integerSize(nameIndex, 4) : 1 + integerSize(name.length, 7) + name.length;
    size += integerSize(value.length, 7) + value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const { name, value, sensitive } of fields) {
    const flags = sensitive ? 0x10 : 0x00;
    const nameIndex = STATIC_NAME_INDEX.get(name);
    if (nameIndex !== undefined) offset = putInteger(out, offset, nameIndex, 4, flags);
    else {
      out[offset++] = flags;
      offset = putString(out, offset, name);
    }
    offset = putString(out, offset, value);
  }
  return out;
}

function integerSize(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let size = 2;
  for (let rest = value - max; rest >= 128; rest = Math.floor(rest / 128)) size += 1;
  return size;
}

function putInteger(out: Buffer, offset: number, value: number, prefixBits: number, flags: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[offset] = flags | value;
    return offset + 1;
  }
  out[offset++] = flags | max;
  let rest = value - max;
  while (rest >= 128) {
    out[offset++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[offset] = rest;
  return offset + 1;
}

/** A string literal without Huffman; latin1 strings are one byte per character. */
function putString(out: Buffer, offset: number, text: string): number {
  offset = putInteger(out, offset, text.length, 7, 0);
  return offset + out.write(text, offset, 'latin1');
}
