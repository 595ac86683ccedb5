// Unpacking one image layer (a tar, plain, gzip or zstd) into an empty
// snapshot directory: every entry type, ownership, modes, times and xattrs,
// OCI whiteouts turned into overlay whiteouts, and no entry allowed to land
// outside the directory (no `..`, never walking through a symlink).
//
// Safety rests on one rule: every path is built from the snapshot root one
// component at a time, each parent checked with lstat to be a real directory,
// and the last component is created fresh (O_EXCL, mknod, symlink, link) or,
// for metadata, opened with O_NOFOLLOW. Entries are applied one after the
// other, so nothing changes a checked parent before it is used.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { extract, type Header as Headers } from 'tar-stream';
import { TarEnd } from './tar-end.ts';
import { S_IFBLK, S_IFCHR, S_IFIFO, SyscallError, lsetxattr, mknod } from './syscalls.ts';
import { quote } from '../errors.ts';

const WHITEOUT_PREFIX = '.wh.';
const META_PREFIX = '.wh..wh.';
const OPAQUE = '.wh..wh..opq';
const XATTR_PREFIX = 'SCHILY.xattr.';

/** A layer that cannot be applied: unsafe, malformed or of an unknown format. */
export class LayerError extends Error {}

export interface ApplyResult {
  /** The digest of the uncompressed tar (`sha256:<hex>`, or sha512): the layer's diff id. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
}

const binaryXattrs = decodeXattrsAsBinary();

/**
 * tar-stream decodes every PAX value as UTF-8, which mangles binary xattr
 * values such as security.capability. Its PAX decoder is replaced once with
 * one that keeps `SCHILY.xattr.*` values as latin1 strings (one char per
 * byte, so the exact bytes come back). Returns false if tar-stream's layout
 * changed and values stay UTF-8.
 */
function decodeXattrsAsBinary(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const headers = require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as { decodePax?: unknown };
    if (typeof headers.decodePax !== 'function') return false;
    headers.decodePax = (buf: Buffer): Record<string, string> => {
      const result: Record<string, string> = {};
      while (buf.length) {
        const space = buf.indexOf(0x20);
        const len = space > 0 ? Number.parseInt(buf.toString('latin1', 0, space), 10) : 0;
        if (!len || len > buf.length) return result;
        const record = buf.subarray(space + 1, len - 1);
        const eq = record.indexOf(0x3d);
        if (eq === -1) return result;
        const key = record.toString('utf8', 0, eq);
        result[key] = record.toString(key.startsWith(XATTR_PREFIX) ? 'latin1' : 'utf8', eq + 1);
        buf = buf.subarray(len);
      }
      return result;
    };
    return true;
  } catch {
    return false;
  }
}

/** The entry's path as components inside the snapshot; throws for anything escaping it. */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new LayerError(`layer entry ${quote(name)} has a NUL in its name`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new LayerError(`layer entry ${quote(name)} escapes the snapshot`);
  return parts;
}

export type Compression = 'gzip' | 'zstd' | 'none';

/** The compression a media type declares; undefined when it does not say (detect from the bytes). */
export function declaredCompression(mediaType: string): Compression | undefined {
  const type = mediaType.trim().toLowerCase();
  if (/[+.]gzip$/.test(type) || type.endsWith('.tar.gz')) return 'gzip';
  if (/[+.]zstd$/.test(type)) return 'zstd';
  if (type === '' || /[.]tar$/.test(type) || type === 'application/x-tar') return undefined;
  const suffix = /[+.]([a-z0-9]+)$/.exec(type)?.[1];
  throw new LayerError(
    `layer media type ${quote(mediaType)} uses ${suffix ? `the ${suffix} compression, which is` : 'a format'} not supported (tar, gzip and zstd are)`,
  );
}

/** The compression the first bytes show. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/**
 * Picks the decompressor from the media type, confirmed by the magic bytes.
 * A layer declared compressed must be; an uncompressed media type whose data
 * is compressed anyway (some registries mislabel) is decompressed.
 */
function decompressor(head: Buffer, mediaType: string): Transform | undefined {
  const declared = declaredCompression(mediaType);
  const found = detectCompression(head);
  if (declared && declared !== 'none' && found !== declared) {
    throw new LayerError(`layer is declared ${mediaType} but its data is not ${declared}-compressed`);
  }
  if (found === 'gzip') return createGunzip();
  if (found === 'zstd') return createZstdDecompress();
  return undefined;
}

/**
 * Reads at least n bytes (fewer at the end of input) without consuming them:
 * they are pushed back, and the returned stream yields all of input.
 */
async function peek(input: Readable, n: number): Promise<{ head: Buffer; source: Readable }> {
  const chunks: Buffer[] = [];
  let length = 0;
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, ended: boolean) => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
      input.off('close', onClose);
      if (err) return reject(err);
      const head = Buffer.concat(chunks);
      if (ended) return resolve({ head, source: Readable.from(head.length ? [head] : []) });
      // Pushed back at once: later, the stream may already have emitted 'end'.
      input.unshift(head);
      resolve({ head, source: input });
    };
    const onReadable = () => {
      let chunk: Buffer | string | null;
      while (length < n && (chunk = input.read()) !== null) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        chunks.push(buf);
        length += buf.length;
      }
      if (length >= n) done(undefined, false);
    };
    const onEnd = () => done(undefined, true);
    const onError = (err: Error) => done(err, false);
    const onClose = () => done(new Error('the layer stream closed before its end'), false);
    input.on('readable', onReadable);
    input.on('end', onEnd);
    input.on('error', onError);
    input.on('close', onClose);
  });
}

/** Digest algorithms a diff id may use. */
export type DiffIdAlgorithm = 'sha256' | 'sha512';

/**
 * Unpacks a layer into dir (which should be empty); returns the uncompressed
 * digest (in the algorithm given: the one of the expected diff id) and size.
 */
export async function applyLayer(
  input: Readable,
  mediaType: string,
  dir: string,
  signal?: AbortSignal,
  algorithm: DiffIdAlgorithm = 'sha256',
): Promise<ApplyResult> {
  // The input (often a network or file stream) is closed on abort and on any
  // failure, even while the pipeline below has not started reading it.
  const onAbort = () => input.destroy(signal?.reason instanceof Error ? signal.reason : new Error('layer unpack aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    const { head, source } = await peek(input, 4);
    signal?.throwIfAborted();
    const stage = decompressor(head, mediaType);
    const hash = createHash(algorithm);
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    const unpacker = new Unpacker(dir);
    const tar = extract();
    // The pipeline reports the first stream to close, often with only
    // "Premature close": the failures that caused it are kept to report.
    const failures: { entry?: Error; decompress?: Error } = {};
    // zlib and zstd errors carry codes of their own (Z_DATA_ERROR, ZSTD_error_...); others are passed on to them.
    stage?.on('error', (err: NodeJS.ErrnoException) => {
      if (/^(Z_|ZSTD_|ERR_ZLIB|ERR_ZSTD)/.test(String(err.code))) failures.decompress ??= err;
    });
    // Errors reach the caller through the pipeline; tar-stream's streams may
    // emit them once more after the pipeline let go, which must not crash.
    tar.on('error', () => undefined);
    tar.on('entry', (header, stream, next) => {
      const body = stream as unknown as Readable;
      body.on('error', () => undefined);
      unpacker.apply(header, body).then(
        () => next(),
        (err) => {
          body.resume();
          failures.entry ??= entryError(header.name, err);
          next(failures.entry);
        },
      );
    });
    try {
      await pipeline([source, ...(stage ? [stage] : []), counter, new TarEnd(), tar], { signal });
    } catch (err) {
      throw unpackError(err, failures, detectCompression(head));
    }
    unpacker.finishDirectories();
    return { diffId: `${algorithm}:${hash.digest('hex')}`, size };
  } catch (err) {
    if (!input.destroyed) input.destroy();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * What a failed unpack reports: the entry that could not be written (a
 * full disk, say), a corrupt compressed stream or a malformed tar as a
 * LayerError, or an error reading the input as it is.
 */
function unpackError(err: unknown, failures: { entry?: Error; decompress?: Error }, compression: Compression): unknown {
  if (err instanceof Error && err.name === 'AbortError') return err;
  if (failures.entry) return failures.entry;
  if (failures.decompress) return new LayerError(`the layer's ${compression} data is corrupt (${failures.decompress.message})`);
  if (err instanceof LayerError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return err;
  // tar-stream's messages go on with a guess ("Maybe ... it needs to be gunzipped?"): the first sentence says it.
  const reason = String((err as Error)?.message ?? err)
    .split(/\.\s/)[0]!
    .replace(/\.$/, '')
    .toLowerCase();
  return new LayerError(`the layer is not a valid tar archive (${reason})`);
}

/**
 * Names the entry in a filesystem error (ENOSPC, EDQUOT, EPERM...) so the
 * message says what could not be written; layer errors already name it.
 */
function entryError(name: string, err: unknown): Error {
  if (!(err instanceof Error)) return new Error(`cannot unpack layer entry ${quote(name)}: ${String(err)}`);
  if (err instanceof LayerError || err.name === 'AbortError') return err;
  const wrapped = new Error(`cannot unpack layer entry ${quote(name)}: ${err.message}`, { cause: err });
  const code = (err as NodeJS.ErrnoException).code;
  if (code) Object.assign(wrapped, { code });
  return wrapped;
}

/**
 * The header with the PAX records tar-stream leaves unapplied: owners
 * beyond ustar's 7 octal digits and sub-second mtimes, as Go's archive/tar
 * (Docker, BuildKit) writes them in PAX-format layers.
 */
function withPax(header: Headers): Headers {
  const pax = header.pax as Record<string, string> | undefined;
  if (!pax) return header;
  const result = { ...header };
  const id = (value: string | undefined) => (value !== undefined && /^[0-9]{1,10}$/.test(value) && Number(value) < 2 ** 32 ? Number(value) : undefined);
  result.uid = id(pax.uid) ?? header.uid;
  result.gid = id(pax.gid) ?? header.gid;
  if (pax.mtime !== undefined && /^-?[0-9]{1,15}(\.[0-9]+)?$/.test(pax.mtime)) result.mtime = new Date(Number(pax.mtime) * 1000);
  return result;
}

interface DirMeta {
  parts: string[];
  header: Headers;
}

const writeAsync = promisify(write);

/** Files up to this size are written synchronously: the many small files of an image. */
const SYNC_WRITE_MAX = 256 * 1024;

/**
 * Applies a layer's entries one at a time under root. Metadata syscalls are
 * synchronous: each takes microseconds, while a round trip through libuv's
 * thread pool for every lstat, chown and chmod made images of many small
 * files unpack several times slower. Contents of large files are written
 * asynchronously, chunk by chunk, so a slow disk does not stall the daemon;
 * memory stays bounded either way.
 */
class Unpacker {
  private readonly root: string;
  /** Relative paths known to be real directories: made or checked in this unpack, forgotten when removed. */
  private readonly verified = new Set<string>();
  private readonly dirs: DirMeta[] = [];

  constructor(root: string) {
    this.root = root;
  }

  async apply(raw: Headers, stream: Readable): Promise<void> {
    const header = withPax(raw);
    const parts = entryComponents(header.name);
    if (!parts.length) {
      stream.resume();
      // The entry for the root itself ("./"): its metadata applies to the snapshot root.
      if (header.type === 'directory') {
        setXattrs(this.root, header, true);
        this.dirs.push({ parts, header });
      }
      return;
    }
    // `.wh..wh.` names other than the opaque marker are aufs bookkeeping
    // (such as its hard link directory), meaningless to overlay.
    if (parts.some((p) => p.startsWith(META_PREFIX) && p !== OPAQUE)) {
      stream.resume();
      return;
    }
    if (parts[parts.length - 1]!.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      this.whiteout(parts, header.name);
      return;
    }
    const path = this.safePath(parts, header.name, true);
    switch (header.type) {
      case 'directory':
        stream.resume();
        if (!this.clearFor(parts, true)) mkdirSync(path, { mode: 0o700 });
        this.verified.add(parts.join('/'));
        // Owner, mode and times at the end; xattrs now.
        setXattrs(path, header, true);
        this.dirs.push({ parts, header });
        return;
      case 'file':
      case 'contiguous-file':
        this.clearFor(parts, false);
        await writeFile(path, header, stream);
        return;
      case 'symlink':
        stream.resume();
        this.clearFor(parts, false);
        // The target is stored as is: it is only ever followed inside the container.
        symlinkSync(header.linkname ?? '', path);
        setMetadata(path, header, true);
        return;
      case 'link':
        stream.resume();
        this.hardLink(parts, path, header);
        return;
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        stream.resume();
        this.clearFor(parts, false);
        const type = header.type === 'fifo' ? S_IFIFO : header.type === 'block-device' ? S_IFBLK : S_IFCHR;
        mknod(path, type | 0o600, header.devmajor ?? 0, header.devminor ?? 0);
        setMetadata(path, header, false);
        return;
      }
      default:
        // Other types (GNU sparse, volume labels...) have no place in an image.
        stream.resume();
    }
  }

  /**
   * Walks the parents of parts from root, each an existing real directory
   * (created when missing and create is set), and returns the full path.
   */
  private safePath(parts: string[], entry: string, create: boolean): string {
    let path = this.root;
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      path = join(path, parts[i]!);
      rel = rel ? `${rel}/${parts[i]}` : parts[i]!;
      if (this.verified.has(rel)) continue;
      const info = lstatSync(path, { throwIfNoEntry: false });
      if (!info && create) {
        mkdirSync(path, { mode: 0o755 });
      } else if (!info) {
        throw new LayerError(`layer entry ${quote(entry)} refers to ${rel}, which is not in the layer`);
      } else if (info.isSymbolicLink()) {
        throw new LayerError(`layer entry ${quote(entry)} escapes the snapshot through the symlink ${rel}`);
      } else if (!info.isDirectory()) {
        throw new LayerError(`layer entry ${quote(entry)} has a parent ${rel} that is not a directory`);
      }
      this.verified.add(rel);
    }
    return parts.length ? join(path, parts[parts.length - 1]!) : this.root;
  }

  /** Removes what is at parts unless both it and the new entry are directories; true when a directory stays. */
  private clearFor(parts: string[], newIsDir: boolean): boolean {
    const path = join(this.root, ...parts);
    const info = lstatSync(path, { throwIfNoEntry: false });
    if (!info) return false;
    if (info.isDirectory() && newIsDir) return true;
    rmSync(path, { recursive: true, force: true });
    if (info.isDirectory()) {
      const rel = parts.join('/');
      for (const known of this.verified) if (known === rel || known.startsWith(`${rel}/`)) this.verified.delete(known);
    }
    return false;
  }

  /** `.wh.NAME` hides NAME of lower layers (a 0/0 char device); `.wh..wh..opq` hides all of its directory. */
  private whiteout(parts: string[], entry: string): void {
    const base = parts[parts.length - 1]!;
    const dirParts = parts.slice(0, -1);
    if (base === OPAQUE) {
      this.safePath(parts, entry, true);
      lsetxattr(join(this.root, ...dirParts), 'trusted.overlay.opaque', Buffer.from('y'));
      return;
    }
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw new LayerError(`layer entry ${quote(entry)} is not a valid whiteout`);
    const hiddenParts = [...dirParts, hidden];
    const path = this.safePath(hiddenParts, entry, true);
    this.clearFor(hiddenParts, false);
    mknod(path, S_IFCHR, 0, 0);
  }

  /** A hard link to an entry already in this layer, reached without any symlink. */
  private hardLink(parts: string[], path: string, header: Headers): void {
    const linkname = header.linkname ?? '';
    const targetParts = entryComponents(linkname);
    if (!targetParts.length) throw new LayerError(`layer entry ${quote(header.name)} is a hard link without a target`);
    const target = this.safePath(targetParts, header.name, false);
    if (target === path) return;
    const info = lstatSync(target, { throwIfNoEntry: false });
    if (!info) throw new LayerError(`layer entry ${quote(header.name)} links to ${quote(linkname)}, which is not in the layer`);
    if (info.isDirectory()) throw new LayerError(`layer entry ${quote(header.name)} is a hard link to the directory ${quote(linkname)}`);
    this.clearFor(parts, false);
    // link(2) on Linux links a symlink itself, never what it points to.
    linkSync(target, path);
  }

  /**
   * Owner, mode and times of the directories, once the whole layer is
   * written (their contents changed their times, and a read-only directory
   * must still take its children), deepest first. Later entries may have
   * replaced a directory or a parent with something else, even a symlink:
   * the path is checked again and opened with O_NOFOLLOW.
   */
  finishDirectories(): void {
    for (const { parts, header } of this.dirs.reverse()) {
      let path: string;
      try {
        path = this.safePath(parts, header.name, false);
      } catch {
        continue;
      }
      let fd: number;
      try {
        fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
      } catch (err) {
        if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((err as NodeJS.ErrnoException).code ?? '')) continue;
        throw err;
      }
      try {
        fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
        fchmodSync(fd, (header.mode ?? 0o755) & 0o7777);
        const mtime = header.mtime ?? new Date(0);
        futimesSync(fd, mtime, mtime);
      } finally {
        closeSync(fd);
      }
    }
  }
}

/** A regular file: contents, then owner, mode, xattrs and times. */
async function writeFile(path: string, header: Headers, stream: Readable): Promise<void> {
  // O_EXCL|O_NOFOLLOW: never opens an existing file or follows a symlink.
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    const sync = (header.size ?? 0) <= SYNC_WRITE_MAX;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (let off = 0; off < chunk.length; ) {
        off += sync ? writeSync(fd, chunk, off) : (await writeAsync(fd, chunk, off, chunk.length - off, null)).bytesWritten;
      }
    }
    fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
    // chmod after chown: chown clears setuid/setgid bits.
    fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
    // xattrs after chown: chown drops security.capability.
    setXattrs(path, header, true);
    const mtime = header.mtime ?? new Date(0);
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}

/** Extended attributes from PAX `SCHILY.xattr.*` records; fileOrDir: path is a regular file or a directory. */
function setXattrs(path: string, header: Headers, fileOrDir: boolean): void {
  for (const [key, value] of Object.entries(header.pax ?? {})) {
    if (!key.startsWith(XATTR_PREFIX)) continue;
    const name = key.slice(XATTR_PREFIX.length);
    // Overlay's own attributes (redirects, metacopy) must come from overlay, not from an image.
    if (name.startsWith('trusted.overlay.')) continue;
    try {
      lsetxattr(path, name, Buffer.from(String(value), binaryXattrs ? 'latin1' : 'utf8'));
    } catch (err) {
      // A filesystem without support for a namespace cannot hold it; the file is still usable.
      if (err instanceof SyscallError && err.code === 'EOPNOTSUPP') continue;
      // The kernel allows user.* attributes only on regular files and directories.
      if (err instanceof SyscallError && err.code === 'EPERM' && !fileOrDir && name.startsWith('user.')) continue;
      throw err;
    }
  }
}

/** Owner, mode, xattrs and times of a symlink, device or fifo just created at path. */
function setMetadata(path: string, header: Headers, isSymlink: boolean): void {
  lchownSync(path, header.uid ?? 0, header.gid ?? 0);
  // chmod after chown: chown clears setuid/setgid bits. Symlinks have no mode of their own.
  if (!isSymlink) chmodSync(path, (header.mode ?? 0o644) & 0o7777);
  setXattrs(path, header, false);
  const mtime = header.mtime ?? new Date(0);
  lutimesSync(path, mtime, mtime);
}
