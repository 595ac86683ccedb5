// The content store: blobs named by their digest under
// <root>/content/blobs/<algorithm>/<hex> (sha256 or sha512). A blob is
// written to a temporary file while its digest and size are checked, and
// renamed into place only if both match.
// An interrupted download keeps its partial file so the next attempt can
// continue from where it stopped (an HTTP range request).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KeyedLock } from '../store/lock.ts';
import { ALGORITHM_NAMES, algorithmOf, digestProblem, encodedOf, hasherFor } from './digest.ts';
import { quote } from '../errors.ts';

export class DigestMismatchError extends Error {
  override name = 'DigestMismatchError';
}

/** Passes bytes through, failing at the end if their digest or count differs from what was expected. */
export function verifier(digest: string, size: number | undefined, onProgress?: () => void): Transform {
  const { hash, result } = hasherFor(digest);
  let count = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      count += chunk.length;
      onProgress?.();
      if (size !== undefined && size >= 0 && count > size) return cb(new DigestMismatchError(`blob ${digest} is larger than its declared ${size} bytes`));
      cb(null, chunk);
    },
    flush(cb) {
      const actual = result();
      if (size !== undefined && size >= 0 && count !== size) return cb(new DigestMismatchError(`blob ${digest} has ${count} bytes, ${size} were declared`));
      if (actual !== digest) return cb(new DigestMismatchError(`blob content does not match its digest: expected ${digest}, got ${actual}`));
      cb();
    },
  });
}

/** Where a blob's bytes come from: a stream starting at `offset` (0 when the source cannot skip). */
export type BlobSource = (offset: number) => Promise<{ stream: Readable; offset: number }>;

/**
 * One blob being written. `append` may be called again after a failure: it
 * continues after the bytes already on disk when the source honours the
 * offset, or starts over when it does not. `commit` verifies and renames.
 */
export class BlobWriter {
  readonly digest: string;
  private readonly size: number | undefined;
  private readonly tmp: string;
  private readonly target: string;

  constructor(digest: string, size: number | undefined, target: string) {
    this.digest = digest;
    this.size = size;
    this.target = target;
    this.tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  }

  /** Bytes already written by earlier attempts. */
  async offset(): Promise<number> {
    return stat(this.tmp).then(
      (s) => s.size,
      () => 0,
    );
  }

  /** Writes from source, then verifies the whole file and moves it into place. */
  /** onProgress: after each chunk received, with its size and the bytes of the blob written so far. */
  async fetch(source: BlobSource, options: { signal?: AbortSignal; onProgress?: (bytes: number, done: number) => void } = {}): Promise<void> {
    let have = await this.offset();
    if (this.size !== undefined && have > this.size) have = 0;
    const { stream, offset } = await source(have);
    if (offset !== have) {
      if (offset !== 0) {
        stream.destroy();
        throw new Error(`the registry resumed blob ${this.digest} at byte ${offset}, not ${have}`);
      }
      await truncate(this.tmp, 0).catch(() => undefined);
    }
    // The digest covers the whole blob: on a resumed transfer, hash what is already on disk first.
    const { hash, result } = hasherFor(this.digest);
    if (offset) for await (const chunk of createReadStream(this.tmp)) hash.update(chunk as Buffer);
    const limit = this.size === undefined ? Infinity : this.size;
    let count = offset;
    const guard = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        count += chunk.length;
        options.onProgress?.(chunk.length, count);
        if (count > limit) return cb(new DigestMismatchError(`blob ${this.digest} is larger than its declared ${this.size} bytes`));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(stream, guard, createWriteStream(this.tmp, { flags: offset ? 'a' : 'w', mode: 0o600 }), { signal: options.signal });
    } catch (err) {
      if (err instanceof DigestMismatchError) await this.discard();
      throw err;
    }
    // A short body is an interrupted transfer: keep the bytes for the next attempt.
    if (this.size !== undefined && count < this.size) throw new Error(`the transfer of blob ${this.digest} stopped after ${count} of ${this.size} bytes`);
    const actual = result();
    if (this.size !== undefined && this.size >= 0 && count !== this.size) {
      await this.discard();
      throw new DigestMismatchError(`blob ${this.digest} has ${count} bytes, ${this.size} were declared`);
    }
    if (actual !== this.digest) {
      await this.discard();
      throw new DigestMismatchError(`blob content does not match its digest: expected ${this.digest}, got ${actual}`);
    }
    await rename(this.tmp, this.target);
  }

  async discard(): Promise<void> {
    await rm(this.tmp, { force: true });
  }
}

export class ContentStore {
  /** The directory of every blob (one subdirectory per digest algorithm). */
  readonly root: string;
  /** The directory of sha256 blobs. */
  readonly dir: string;
  private readonly lock = new KeyedLock();

  constructor(root: string) {
    this.root = join(root, 'blobs');
    this.dir = join(this.root, 'sha256');
  }

  /** Creates the directories and removes partial files an earlier run left. */
  async load(): Promise<void> {
    for (const algorithm of ALGORITHM_NAMES) {
      const dir = join(this.root, algorithm);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const name of await readdir(dir)) {
        if (name.includes('.tmp-')) await rm(join(dir, name), { force: true });
      }
    }
  }

  path(digest: string): string {
    if (digestProblem(digest)) throw new Error(`invalid digest ${quote(digest)}`);
    return join(this.root, algorithmOf(digest), encodedOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    return stat(this.path(digest)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores a blob unless present, with `attempt(writer)` doing the transfer
   * (and its retries). One writer per digest at a time: a concurrent caller
   * waits and then finds the blob. Returns whether this call created it.
   */
  async ingest(digest: string, size: number | undefined, attempt: (writer: BlobWriter) => Promise<void>): Promise<boolean> {
    return this.lock.with(digest, async () => {
      if (await this.has(digest)) return false;
      const writer = new BlobWriter(digest, size, this.path(digest));
      try {
        await attempt(writer);
        return true;
      } finally {
        await writer.discard();
      }
    });
  }

  /** Stores a blob from one stream, verifying digest and size; nothing is kept on failure. */
  async write(
    digest: string,
    size: number | undefined,
    input: Readable,
    options: { signal?: AbortSignal; onProgress?: (bytes: number, done: number) => void } = {},
  ): Promise<boolean> {
    return this.ingest(digest, size, (w) => w.fetch(async () => ({ stream: input, offset: 0 }), options));
  }

  read(digest: string): Readable {
    return createReadStream(this.path(digest));
  }

  async remove(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const digests: string[] = [];
    for (const algorithm of ALGORITHM_NAMES) {
      for (const name of await readdir(join(this.root, algorithm))) {
        if (!digestProblem(`${algorithm}:${name}`)) digests.push(`${algorithm}:${name}`);
      }
    }
    return digests;
  }
}
