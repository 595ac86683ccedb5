// Where a layer's tar archive ends. A tar ends with two zero blocks; some
// image builders leave bytes after them (padding of the compressed stream,
// or garbage), which containerd and Docker ignore. tar-stream instead reads
// on and fails on the first non-zero block as a corrupt header. TarEnd
// passes the archive through up to and including its end marker and drops
// the rest, so the tar parser never sees it. It frames the blocks exactly as
// tar-stream does (sizes from the header or a PAX `size` record; directories
// carry no data), so both agree on where every header is.
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
const TYPE_PAX = 'x'.charCodeAt(0);
const TYPE_PAX_GLOBAL = 'g'.charCodeAt(0);
const TYPE_GNU_LONG_NAME = 'L'.charCodeAt(0);
const TYPE_GNU_LONG_LINK = 'K'.charCodeAt(0);
const TYPE_GNU_SPARSE_LONG_NAME = 'N'.charCodeAt(0);
const TYPE_DIRECTORY = '5'.charCodeAt(0);
const LONG_HEADERS = new Set([TYPE_PAX, TYPE_PAX_GLOBAL, TYPE_GNU_LONG_NAME, TYPE_GNU_LONG_LINK, TYPE_GNU_SPARSE_LONG_NAME]);
/** tar-stream refuses long headers larger than this; so do we, without framing them. */
const MAX_LONG_HEADER = 1024 * 1024;

/** Whether a header block is empty: every byte but the checksum field is zero. */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    if (block[i] !== 0) return false;
  }
  return true;
}

/** A numeric header field: octal text, or base-256 when the first byte has its high bit. */
export function headerNumber(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** PAX records (`<len> key=value\n`), as far as they parse. */
export function paxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let rest = data;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    const length = parseInt(rest.subarray(0, space < 0 ? rest.length : space).toString('latin1'), 10);
    if (!length || space < 0) break;
    const record = rest.subarray(space + 1, length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq < 0) break;
    records[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(length);
  }
  return records;
}

const padding = (size: number) => (size % BLOCK === 0 ? 0 : BLOCK - (size % BLOCK));

type State =
  | { kind: 'header' }
  | { kind: 'data'; left: number }
  | { kind: 'long'; type: number; size: number; chunks: Buffer[]; got: number }
  | { kind: 'ended' };

export class TarEnd extends Transform {
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private zeroBlocks = 0;
  private pax: Record<string, string> | null = null;
  private paxGlobal: Record<string, string> | null = null;
  /** Bytes dropped after the end marker. */
  trailing = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < this.pending.length) {
      const used = this.step(this.pending.subarray(offset), out);
      if (used === 0) break;
      offset += used;
    }
    this.pending = this.pending.subarray(offset);
    for (const piece of out) this.push(piece);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.pending.length > 0 && this.state.kind !== 'ended') this.push(this.pending);
    callback();
  }

  /** Consumes the start of input in the current state; returns how many bytes (0: needs more). */
  private step(input: Buffer, out: Buffer[]): number {
    const state = this.state;
    switch (state.kind) {
      case 'ended':
        this.trailing += input.length;
        return input.length;
      case 'data': {
        const n = Math.min(state.left, input.length);
        out.push(input.subarray(0, n));
        state.left -= n;
        if (state.left === 0) this.state = { kind: 'header' };
        return n;
      }
      case 'long': {
        const total = state.size + padding(state.size);
        const n = Math.min(total - state.got, input.length);
        out.push(input.subarray(0, n));
        state.chunks.push(input.subarray(0, n));
        state.got += n;
        if (state.got === total) this.finishLong(state);
        return n;
      }
      case 'header':
        if (input.length < BLOCK) return 0;
        out.push(input.subarray(0, BLOCK));
        this.header(Buffer.from(input.subarray(0, BLOCK)));
        return BLOCK;
    }
  }

  private header(block: Buffer): void {
    if (isZeroBlock(block)) {
      this.zeroBlocks += 1;
      if (this.zeroBlocks === 2) this.state = { kind: 'ended' };
      return;
    }
    this.zeroBlocks = 0;
    const type = block[156]!;
    let size = headerNumber(block.subarray(124, 136));
    // A PAX record applies to the next header of any kind, as tar-stream reads it.
    if (this.pax?.size) size = parseInt(this.pax.size, 10);
    this.pax = null;
    if (!Number.isFinite(size) || size < 0) return; // tar-stream fails on it; pass on as is
    if (LONG_HEADERS.has(type)) {
      if (size > MAX_LONG_HEADER) return; // tar-stream refuses it
      if (size > 0) this.state = { kind: 'long', type, size, chunks: [], got: 0 };
      return;
    }
    const directory = type === TYPE_DIRECTORY || ((type === 0 || type === 0x30) && nameEndsWithSlash(block));
    if (size > 0 && !directory) this.state = { kind: 'data', left: size + padding(size) };
  }

  private finishLong(state: Extract<State, { kind: 'long' }>): void {
    const data = Buffer.concat(state.chunks).subarray(0, state.size);
    if (state.type === TYPE_PAX) this.pax = { ...(this.paxGlobal ?? {}), ...paxRecords(data) };
    if (state.type === TYPE_PAX_GLOBAL) this.paxGlobal = paxRecords(data);
    this.state = { kind: 'header' };
  }
}

function nameEndsWithSlash(block: Buffer): boolean {
  const end = block.indexOf(0);
  const nameEnd = end < 0 || end > 100 ? 100 : end;
  return nameEnd > 0 && block[nameEnd - 1] === 0x2f;
}
