// Layer snapshots: each layer unpacked once, keyed by its chain id, into a
// directory shared by every image that uses it; leases that keep snapshots
// alive while containers or image volumes use them; garbage collection.
//
// Layout under the store's root:
//   <n>/fs         the unpacked layer (an overlay lower dir)
//   <n>/meta.json  its chain id, diff id, size and disk usage: the index entry for <n>
//   tmp-*          unpacks and removals under way (deleted at load)
//   leases/<owner>.json, empty/, containers/<id>/{upper,work}
//
// Why short numbers instead of chain ids as directory names: the kernel
// takes overlay mount options in a single page (4 KiB), and a lowerdir list
// of absolute paths named by 71-character chain ids overflows it at about 40
// layers. Mounts name the lower dirs relative to the root ("12/fs", run with
// the root as working directory) and numbers are reused smallest-first, so a
// layer costs a handful of bytes and 120+ layers fit easily. The number of a
// chain id is found in <n>/meta.json, which is written before the unpacked
// directory is renamed into place, so a visible <n> always has its index entry.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LayerError, applyLayer } from './layer.ts';
import { diskUsage, type Usage } from './usage.ts';
import { syncfs } from './syscalls.ts';
import { VOLATILE, writeFileAtomic, assertSafeId } from '../store/store.ts';
import type { Trash } from '../store/trash.ts';

export interface SnapshotInfo {
  chainId: string;
  diffId: string;
  /** Bytes of the uncompressed layer tar. */
  size: number;
}

/** Opens a layer's (possibly compressed) tar stream and says its media type. */
export type LayerOpener = () => Promise<{ stream: Readable; mediaType: string }>;

/** Chain ids of a layer stack, bottom first (OCI image spec: ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))). */
export function chainIds(diffIds: string[]): string[] {
  const result: string[] = [];
  for (const diffId of diffIds) {
    const previous = result[result.length - 1];
    result.push(previous ? `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}` : diffId);
  }
  return result;
}

interface Snapshot {
  /** The directory number: the snapshot lives in <root>/<n>. */
  n: number;
  info: SnapshotInfo;
  /** Disk use of <n>/fs, measured once (the contents never change). */
  usage?: Usage;
}

/** What meta.json holds. */
interface Meta extends SnapshotInfo {
  usage?: Usage;
}

function validUsage(u: unknown): Usage | undefined {
  const v = u as Usage | undefined;
  return v && Number.isSafeInteger(v.bytes) && Number.isSafeInteger(v.inodes) ? { bytes: v.bytes, inodes: v.inodes } : undefined;
}

interface Unpack {
  promise: Promise<void>;
  controller: AbortController;
  waiters: number;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class SnapshotStore {
  readonly root: string;
  /** Where removed snapshots and container dirs go to be deleted after the call (without one: deleted at once). */
  readonly trash: Trash | undefined;
  private readonly byChain = new Map<string, Snapshot>();
  private readonly inflight = new Map<string, Unpack>();
  private readonly leases = new Map<string, string[]>();
  /** Directory numbers taken by snapshots or reserved by unpacks under way. */
  private readonly numbers = new Set<number>();

  constructor(root: string, trash?: Trash) {
    this.root = root;
    this.trash = trash;
  }

  /** Deletes a directory of the store: moved into the trash now, deleted in the background. Idempotent. */
  async deleteDir(path: string): Promise<void> {
    if (this.trash) await this.trash.discard(path);
    else await rm(path, { recursive: true, force: true });
  }

  private get leaseDir(): string {
    return join(this.root, 'leases');
  }

  /** The directory under which container upper/work directories live by default. */
  get containersDir(): string {
    return join(this.root, 'containers');
  }

  /** An always-empty directory, the lower layer of images without layers (relative to root). */
  get emptyDir(): string {
    return 'empty';
  }

  /** Reads the snapshots and leases; removes unpacks and removals a crash interrupted. */
  async load(): Promise<void> {
    // Private to root: snapshots hold images' setuid binaries and device
    // nodes, which host users must not reach (containers see them only
    // through their overlay mounts, which overlay reads as its mounter).
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    await mkdir(this.leaseDir, { recursive: true, mode: 0o700 });
    await mkdir(this.containersDir, { recursive: true, mode: 0o711 });
    await mkdir(join(this.root, this.emptyDir), { recursive: true, mode: 0o755 });
    for (const name of await readdir(this.root)) {
      if (name.startsWith('tmp-')) {
        await rm(join(this.root, name), { recursive: true, force: true });
        continue;
      }
      if (!/^[0-9]+$/.test(name)) continue;
      const meta = await readFile(join(this.root, name, 'meta.json'), 'utf8')
        .then((text) => JSON.parse(text) as Meta)
        .catch(() => undefined);
      const n = Number(name);
      if (typeof meta?.chainId !== 'string' || !meta.chainId || this.byChain.has(meta.chainId)) {
        await rm(join(this.root, name), { recursive: true, force: true });
        continue;
      }
      const info: SnapshotInfo = { chainId: meta.chainId, diffId: String(meta.diffId), size: Number(meta.size) || 0 };
      this.byChain.set(info.chainId, { n, info, usage: validUsage(meta.usage) });
      this.numbers.add(n);
    }
    for (const name of await readdir(this.leaseDir)) {
      if (!name.endsWith('.json')) continue;
      const chains = await readFile(join(this.leaseDir, name), 'utf8')
        .then((text) => JSON.parse(text) as unknown)
        .catch(() => undefined);
      if (Array.isArray(chains)) this.leases.set(name.slice(0, -'.json'.length), chains.map(String));
      else await rm(join(this.leaseDir, name), { force: true });
    }
  }

  has(chainId: string): boolean {
    return this.byChain.has(chainId);
  }

  /** The snapshot's directory relative to root, as overlay mounts name it. */
  relativeDir(chainId: string): string {
    const entry = this.byChain.get(chainId);
    if (!entry) throw new Error(`snapshot ${chainId} does not exist; pull the image again`);
    return `${entry.n}/fs`;
  }

  /** The snapshot's directory: an overlay lower layer. */
  dir(chainId: string): string {
    return join(this.root, this.relativeDir(chainId));
  }

  list(): SnapshotInfo[] {
    return [...this.byChain.values()].map((e) => e.info);
  }

  /**
   * Unpacks the layer for chainId once into a temp dir, checks its diff id,
   * and renames it into place: a half unpack is never visible. Concurrent
   * callers share one unpack; it is cancelled only when every caller's
   * signal has aborted. A mismatch or failure leaves nothing behind.
   */
  ensure(chainId: string, expectedDiffId: string, open: LayerOpener, signal?: AbortSignal): Promise<void> {
    if (this.byChain.has(chainId)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    let job = this.inflight.get(chainId);
    if (!job) {
      const controller = new AbortController();
      const promise = this.unpack(chainId, expectedDiffId, open, controller.signal).finally(() => {
        if (this.inflight.get(chainId) === job) this.inflight.delete(chainId);
      });
      job = { promise, controller, waiters: 0 };
      this.inflight.set(chainId, job);
    }
    const shared = job;
    shared.waiters += 1;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        shared.waiters -= 1;
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => {
        settle(signal!.reason);
        if (shared.waiters > 0) return;
        // Nobody waits any more: stop the unpack; a later ensure starts afresh.
        if (this.inflight.get(chainId) === shared) this.inflight.delete(chainId);
        shared.controller.abort(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        () => settle(),
        (err: unknown) => settle(err ?? new Error('layer unpack failed')),
      );
    });
  }

  private async unpack(chainId: string, expectedDiffId: string, open: LayerOpener, signal: AbortSignal): Promise<void> {
    const tmp = join(this.root, `tmp-${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(join(tmp, 'fs'), { recursive: true, mode: 0o755 });
      const { stream, mediaType } = await open();
      const { diffId, size } = await applyLayer(stream, mediaType, join(tmp, 'fs'), signal, expectedDiffId.startsWith('sha512:') ? 'sha512' : 'sha256');
      if (diffId !== expectedDiffId) throw new LayerError(`layer content ${diffId} does not match the image config's diff id ${expectedDiffId}`);
      const info: SnapshotInfo = { chainId, diffId, size };
      // Measured now, once: ImageFsInfo, asked for every few seconds, then never walks the layers.
      const usage = await diskUsage(join(tmp, 'fs'));
      await writeFile(join(tmp, 'meta.json'), JSON.stringify({ ...info, usage } satisfies Meta));
      // On disk before it is visible: after a power loss a snapshot is whole or absent, never empty files.
      await syncfs(tmp);
      signal.throwIfAborted();
      // An abandoned unpack of the same layer may have finished meanwhile.
      if (this.byChain.has(chainId)) {
        await rm(tmp, { recursive: true, force: true });
        return;
      }
      const n = this.freeNumber();
      this.numbers.add(n);
      try {
        await rename(tmp, join(this.root, String(n)));
      } catch (err) {
        this.numbers.delete(n);
        throw err;
      }
      if (this.byChain.has(chainId)) {
        // An abandoned unpack of the same layer was renamed into place during this rename: keep one.
        await this.discard(n);
        return;
      }
      // The rename itself on disk before an image record can name the snapshot.
      await fsyncDir(this.root);
      this.byChain.set(chainId, { n, info, usage });
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** The smallest directory number not in use: keeps overlay mount options short. */
  private freeNumber(): number {
    let n = 1;
    while (this.numbers.has(n)) n += 1;
    return n;
  }

  /** Whether a container or image volume holds a lease on chainId. */
  isLeased(chainId: string): boolean {
    for (const chains of this.leases.values()) if (chains.includes(chainId)) return true;
    return false;
  }

  /**
   * Deletes a snapshot. One that is leased (mounted by a container or an
   * image volume) stays; returns whether the snapshot is gone.
   */
  async remove(chainId: string): Promise<boolean> {
    const entry = this.byChain.get(chainId);
    if (!entry) return true;
    if (this.isLeased(chainId)) return false;
    this.byChain.delete(chainId);
    await this.discard(entry.n);
    return true;
  }

  /** Deletes directory <n> and frees its number. */
  private async discard(n: number): Promise<void> {
    if (this.trash) {
      // The trash renames it away in one step (a crash never leaves part of a
      // snapshot under a valid name) and deletes it after the call.
      await this.trash.discard(join(this.root, String(n)));
      this.numbers.delete(n);
      return;
    }
    const trash = join(this.root, `tmp-rm-${randomBytes(8).toString('hex')}`);
    await rename(join(this.root, String(n)), trash).catch((err) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.numbers.delete(n);
    await rm(trash, { recursive: true, force: true });
  }

  /**
   * Keeps chainIds alive for owner (a container or an image volume) until
   * release; survives a restart of the daemon. The file is replaced
   * atomically but not synced: a lease protects the layers of a mounted
   * rootfs, and a power loss unmounts them all (such a container never runs
   * again), so a lease lost with it protects nothing.
   */
  async retain(ownerId: string, chains: string[]): Promise<void> {
    assertSafeId(ownerId);
    await mkdir(this.leaseDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(this.leaseDir, `${ownerId}.json`), JSON.stringify(chains), 0o600, VOLATILE);
    this.leases.set(ownerId, [...chains]);
  }

  /** Ends owner's lease. Idempotent. */
  async release(ownerId: string): Promise<void> {
    assertSafeId(ownerId);
    await rm(join(this.leaseDir, `${ownerId}.json`), { force: true });
    this.leases.delete(ownerId);
  }

  /**
   * Ends the leases of owners for which live says no (say, a container a
   * crash removed between deleting its record and releasing its lease, whose
   * layers would otherwise stay forever). Call at start; returns the owners.
   */
  async releaseUnless(live: (ownerId: string) => boolean): Promise<string[]> {
    const released: string[] = [];
    for (const owner of [...this.leases.keys()]) {
      if (live(owner)) continue;
      await this.release(owner);
      released.push(owner);
    }
    return released;
  }

  /** The chain ids leased by a container and its image volumes ("<id>-volN"). */
  leasedBy(containerId: string): string[] {
    const chains = new Set<string>();
    for (const [owner, held] of this.leases) {
      if (owner === containerId || owner.startsWith(`${containerId}-vol`)) held.forEach((c) => chains.add(c));
    }
    return [...chains];
  }

  /** Owners holding leases, with the chain ids each holds. */
  listLeases(): Map<string, string[]> {
    return new Map([...this.leases].map(([owner, chains]) => [owner, [...chains]]));
  }

  /** Removes snapshots neither in keep, leased nor being unpacked; returns the removed chain ids. */
  async gc(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const chainId of [...this.byChain.keys()]) {
      if (keep.has(chainId) || this.inflight.has(chainId)) continue;
      if (await this.remove(chainId)) removed.push(chainId);
    }
    return removed;
  }

  /**
   * Disk use of everything under the root (snapshots and the default
   * container upper dirs). Snapshots count with the figures measured when
   * they were unpacked; only the rest is walked.
   */
  async usage(): Promise<Usage> {
    const known = new Map<string, Usage>();
    for (const entry of [...this.byChain.values()]) {
      const fs = join(this.root, String(entry.n), 'fs');
      entry.usage ??= await diskUsage(fs);
      known.set(fs, entry.usage);
    }
    return diskUsage(this.root, { known: (path) => known.get(path) });
  }

  /** Disk use of the unpacked snapshots alone, as measured when each was unpacked. */
  async snapshotUsage(): Promise<Usage> {
    const total: Usage = { bytes: 0, inodes: 0 };
    for (const entry of [...this.byChain.values()]) {
      entry.usage ??= await diskUsage(join(this.root, String(entry.n), 'fs'));
      total.bytes += entry.usage.bytes;
      total.inodes += entry.usage.inodes;
    }
    return total;
  }

  /** The path whose filesystem holds the snapshots (ImageFsInfo's FilesystemIdentifier). */
  mountpoint(): string {
    return this.root;
  }
}
