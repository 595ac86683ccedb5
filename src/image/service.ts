// The image service: pulls (one shared download per reference), image
// records with their tags and digests, lookups by id, tag or digest,
// removal with garbage collection of blobs and snapshots, and filesystem
// usage for kubelet's image GC.
import type { ResolvedImage } from '../oci/request.ts';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { Config } from '../config/config.ts';
import type { SnapshotStore } from '../snapshot/snapshots.ts';
import { diskUsage } from '../snapshot/usage.ts';
import { RecordStore } from '../store/store.ts';
import { KeyedLock } from '../store/lock.ts';
import { ContentStore } from './content.ts';
import { asImageId, formatReference, parseReference, repository } from './reference.ts';
import { PullProgress, PullTimeoutError, pullImage } from './pull.ts';
import { pullError } from './errors.ts';
import { DomainError } from '../errors.ts';
import { metrics } from '../metrics.ts';
import type { Credentials } from './registry.ts';
import { lookupCredentials } from './credentials.ts';
import { toCriImage, type ImageRecord } from './record.ts';
import type { Image } from '../generated/runtime/v1/Image.ts';
import { checkRecord } from './validate.ts';

/** One pull under way, shared by the callers asking for the same reference. */
interface SharedPull {
  promise: Promise<string>;
  controller: AbortController;
  waiters: number;
  /** Epoch ms by which the pull must end: the pull timeout, or the latest deadline of its callers. */
  timeoutAt: number;
  callerDeadline: number;
}

export interface PullAuth {
  username?: string;
  password?: string;
  auth?: string;
  identity_token?: string;
  registry_token?: string;
  server_address?: string;
}

/** Credentials from a PullImageRequest's AuthConfig (auth is base64 user:password). */
export function credentialsFrom(auth: PullAuth | null | undefined): Credentials | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (auth.auth && !username) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    username = colon >= 0 ? decoded.slice(0, colon) : decoded;
    password = colon >= 0 ? decoded.slice(colon + 1) : '';
  }
  const creds: Credentials = {
    username: username || undefined,
    password: password || undefined,
    identityToken: auth.identity_token || undefined,
    registryToken: auth.registry_token || undefined,
  };
  if (!Object.values(creds).some(Boolean)) return undefined;
  return auth.server_address ? { ...creds, serverAddress: auth.server_address } : creds;
}

export class ImageService {
  private readonly config: Config;
  private readonly log: Logger;
  readonly snapshots: SnapshotStore;
  readonly content: ContentStore;
  private readonly store: RecordStore<ImageRecord>;
  private readonly inflight = new Map<string, SharedPull>();
  /** Records already warned about as unrenderable. */
  private readonly unrenderable = new Set<string>();
  private readonly lock = new KeyedLock();
  /** What each running pull relies on; garbage collection keeps it. */
  private readonly active = new Set<{ blobs: Set<string>; chains: Set<string> }>();
  /** Counts changes of images, blobs and snapshots; usage measured before the last change is not served. */
  private changes = 0;
  private usage: UsageEntry | undefined;
  private measuring: UsageEntry | undefined;

  constructor(config: Config, log: Logger, snapshots: SnapshotStore) {
    this.config = config;
    this.log = log.child({ component: 'images' });
    this.snapshots = snapshots;
    this.content = new ContentStore(join(config.root, 'content'));
    this.store = new RecordStore<ImageRecord>(join(config.root, 'images'));
  }

  /** Reads the image records, then frees what an interrupted pull or removal left unreferenced. */
  async load(): Promise<void> {
    await this.content.load();
    // A record that cannot be used (edited by hand, or written by a version
    // that stored wrongly typed configs) is skipped, so it never breaks the
    // listing of the others; pulling the image again replaces it.
    await this.store.load({
      check: (value) => {
        checkRecord(value, 'image record');
        toCriImage(value as ImageRecord);
      },
      onInvalid: (file, err) => this.log.warn({ file, err: err.message }, 'image record skipped: it cannot be read; pull the image again'),
    });
    await this.collectGarbage();
  }

  /**
   * The CRI view of records. One that cannot be rendered (it passed the
   * checks at pull and at start, so only a bug or a hand edit gets here) is
   * left out with a warning: it never fails the listing of the others.
   */
  render(records: ImageRecord[]): Image[] {
    const images: Image[] = [];
    for (const r of records) {
      try {
        checkRecord(r, `image record ${r.id}`);
        images.push(toCriImage(r));
      } catch (err) {
        if (!this.unrenderable.has(r.id))
          this.log.warn(
            { id: r.id, name: r.repoTags?.[0], err: (err as Error).message },
            'image left out of the listing: its record cannot be read; pull the image again',
          );
        this.unrenderable.add(r.id);
      }
    }
    return images;
  }

  list(): ImageRecord[] {
    return this.store.list().sort((a, b) => a.pulledAt - b.pulledAt);
  }

  /** An image by id (full or unique prefix of 12+), tag, or digest reference. */
  find(ref: string): ImageRecord | undefined {
    if (!ref) return undefined;
    const id = asImageId(ref);
    if (id) return this.store.get(id);
    if (/^(sha256:)?[a-f0-9]{12,63}$|^sha512:[a-f0-9]{12,127}$/.test(ref)) {
      const byPrefix = this.store.find(ref.includes(':') ? ref : `sha256:${ref}`);
      if (byPrefix) return byPrefix;
    }
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      return undefined;
    }
    if (parsed.digest) {
      const wanted = `${repository(parsed)}@${parsed.digest}`;
      return this.store.list().find((r) => r.repoDigests.includes(wanted));
    }
    const tag = formatReference(parsed);
    return this.store.list().find((r) => r.repoTags.includes(tag));
  }

  /** The view the container service needs. */
  resolve(ref: string): ResolvedImage | undefined {
    const r = this.find(ref);
    return r && { id: r.id, repo_tags: r.repoTags, repo_digests: r.repoDigests, config: r.config, chainIds: r.chainIds };
  }

  /**
   * Pulls ref (sharing the work with a concurrent pull of the same
   * reference); returns the image id. deadline: the caller's, in epoch ms.
   */
  pull(refText: string, auth: Credentials | undefined, signal: AbortSignal, deadline = Infinity): Promise<string> {
    const ref = parseReference(refText);
    const key = formatReference(ref);
    if (signal.aborted) return Promise.reject(signal.reason);
    // A pull with its own credentials does not share another caller's result.
    const shareKey = auth ? undefined : key;
    let entry = shareKey ? this.inflight.get(shareKey) : undefined;
    if (entry) {
      entry.callerDeadline = Math.max(entry.callerDeadline, deadline);
    } else {
      const controller = new AbortController();
      const seconds = this.config.image.pull_timeout_seconds;
      const timer =
        seconds > 0
          ? setTimeout(
              () => controller.abort(new PullTimeoutError(`the pull of ${key} did not finish within ${seconds}s ([image] pull_timeout_seconds)`)),
              seconds * 1000,
            )
          : undefined;
      const created: SharedPull = {
        controller,
        waiters: 0,
        promise: Promise.resolve(''),
        timeoutAt: seconds > 0 ? Date.now() + seconds * 1000 : Infinity,
        callerDeadline: deadline,
      };
      created.promise = this.doPull(ref, key, auth, controller.signal, () => Math.min(created.timeoutAt, created.callerDeadline));
      void created.promise.finally(() => clearTimeout(timer)).catch(() => undefined);
      entry = created;
      if (shareKey) {
        this.inflight.set(shareKey, entry);
        void entry.promise.finally(() => this.inflight.delete(shareKey)).catch(() => undefined);
      }
    }
    const shared = entry;
    shared.waiters += 1;
    // The download stops when every caller waiting for it has gone.
    signal.addEventListener(
      'abort',
      () => {
        shared.waiters -= 1;
        if (shared.waiters === 0) shared.controller.abort(signal.reason);
      },
      { once: true },
    );
    return abortable(shared.promise, signal);
  }

  private async doPull(
    ref: ReturnType<typeof parseReference>,
    key: string,
    auth: Credentials | undefined,
    signal: AbortSignal,
    deadline: () => number,
  ): Promise<string> {
    const created = { blobs: new Set<string>(), chains: new Set<string>() };
    const using = { blobs: new Set<string>(), chains: new Set<string>() };
    const started = Date.now();
    const progress = new PullProgress();
    this.log.info({ name: key }, 'pulling image');
    const interval = this.config.image.progress_log_interval_seconds;
    const ticker = interval > 0 ? setInterval(() => this.logProgress(key, started, progress), interval * 1000) : undefined;
    ticker?.unref();
    const endTimer = metrics.imagePullDuration.startTimer();
    metrics.imagePullsInFlight.inc();
    this.active.add(using);
    try {
      const pulled = await pullImage(ref, {
        progress,
        config: this.config,
        log: this.log,
        content: this.content,
        snapshots: this.snapshots,
        signal,
        deadline,
        created,
        using,
        credentials: (endpoint) =>
          lookupCredentials(endpoint, ref.domain, {
            requested: auth,
            configured: this.config.registry.auths,
            decode: credentialsFrom,
            helpers: { credHelpers: this.config.registry.cred_helpers, credsStore: this.config.registry.creds_store, authFile: this.config.registry.auth_file },
          }),
      });
      // The record is written last and atomically: until then no half image is visible.
      await this.lock.with('records', async () => {
        if (signal.aborted) throw signal.reason;
        const { repository: repo, ...rest } = pulled;
        const current = this.store.get(pulled.id);
        const record: ImageRecord = current
          ? { ...current, ...rest, repoTags: current.repoTags, repoDigests: current.repoDigests }
          : { ...rest, repoTags: [], repoDigests: [], pinned: false, pulledAt: Date.now() };
        const tag = ref.tag && !ref.digest ? formatReference(ref) : undefined;
        if (tag) await this.moveTag(tag, record.id);
        addUnique(record.repoTags, tag);
        addUnique(record.repoDigests, `${repo}@${pulled.manifestDigest}`);
        record.pinned = this.isPinned(record);
        await this.store.put(record);
      });
      this.changes++;
      this.log.info({ id: pulled.id, name: key, ms: Date.now() - started, bytes: progress.received }, 'image pulled');
      metrics.imagePulls.inc({ result: 'success' });
      endTimer({ result: 'success' });
      return pulled.id;
    } catch (err) {
      this.active.delete(using);
      await this.discard(created);
      metrics.imagePulls.inc({ result: 'failure' });
      metrics.imagePullFailures.inc({ reason: failureReason(err, signal) });
      endTimer({ result: 'failure' });
      throw err;
    } finally {
      clearInterval(ticker);
      metrics.imagePullsInFlight.dec();
      this.active.delete(using);
    }
  }

  /** The periodic info line of a long pull: each blob being fetched or unpacked, with bytes done and total. */
  private logProgress(image: string, started: number, progress: PullProgress): void {
    const blobs = [...progress.blobs]
      .filter(([, b]) => b.state !== 'done')
      .map(([digest, b]) => ({ digest, kind: b.kind, state: b.state, done: b.done, total: b.total }));
    const all = [...progress.blobs.values()];
    this.log.info(
      {
        name: image,
        seconds: Math.round((Date.now() - started) / 1000),
        received: progress.received,
        done: all.reduce((n, b) => n + b.done, 0),
        total: all.reduce((n, b) => n + b.total, 0),
        blobs,
      },
      'image pull in progress',
    );
  }

  /** Images named in [image] pinned_images are never removed by kubelet's image GC. */
  private isPinned(record: ImageRecord): boolean {
    const pinned = this.config.image.pinned_images ?? [];
    return pinned.some((p) => {
      if (asImageId(p) === record.id) return true;
      try {
        const parsed = parseReference(p);
        return parsed.digest ? record.repoDigests.includes(`${repository(parsed)}@${parsed.digest}`) : record.repoTags.includes(formatReference(parsed));
      } catch {
        return false;
      }
    });
  }

  /** Removes the tag from any other image holding it. */
  private async moveTag(tag: string, id: string): Promise<void> {
    for (const other of this.store.list()) {
      if (other.id === id || !other.repoTags.includes(tag)) continue;
      other.repoTags = other.repoTags.filter((t) => t !== tag);
      await this.store.put(other);
    }
  }

  /** After a failed pull: removes what it created that no image or other running pull needs. */
  private async discard(created: { blobs: Set<string>; chains: Set<string> }): Promise<void> {
    await this.lock.with('records', async () => {
      const used = this.referenced();
      for (const digest of created.blobs) if (!used.blobs.has(digest)) await this.content.remove(digest);
      for (const chain of created.chains) if (!used.chains.has(chain)) await this.snapshots.remove(chain).catch(() => undefined);
    });
    this.changes++;
  }

  /** Blobs and snapshots that image records or running pulls need. */
  private referenced(): { blobs: Set<string>; chains: Set<string> } {
    const blobs = new Set<string>();
    const chains = new Set<string>();
    for (const pull of this.active) {
      pull.blobs.forEach((b) => blobs.add(b));
      pull.chains.forEach((c) => chains.add(c));
    }
    for (const r of this.store.list()) {
      blobs.add(r.id);
      r.layers.forEach((l) => blobs.add(l.digest));
      r.chainIds.forEach((c) => chains.add(c));
    }
    return { blobs, chains };
  }

  /**
   * Removes an image. By id or digest the whole image goes; by tag only that
   * tag, and the image with it when no tag is left. Absent images are fine.
   */
  async remove(ref: string): Promise<void> {
    await this.lock.with('records', async () => {
      const record = this.find(ref);
      if (!record || !this.store.get(record.id)) return;
      let tag: string | undefined;
      try {
        const parsed = parseReference(ref);
        if (!parsed.digest && !asImageId(ref)) tag = formatReference(parsed);
      } catch {
        tag = undefined;
      }
      if (tag && record.repoTags.includes(tag) && record.repoTags.length > 1) {
        record.repoTags = record.repoTags.filter((t) => t !== tag);
        await this.store.put(record);
        return;
      }
      await this.store.delete(record.id);
      this.log.info({ id: record.id, name: ref, tags: record.repoTags }, 'image removed');
    });
    await this.collectGarbage();
  }

  /**
   * After a container's leases ended: snapshots it kept although their image
   * was removed meanwhile are deleted now rather than at the next removal.
   */
  async leasesEnded(chains: string[]): Promise<void> {
    const left = chains.filter((c) => this.snapshots.has(c) && !this.snapshots.isLeased(c));
    if (left.length === 0) return;
    const used = this.referenced();
    if (left.some((c) => !used.chains.has(c))) await this.collectGarbage();
  }

  /** Frees blobs and snapshots that no image references (snapshots in use by containers are leased). */
  async collectGarbage(): Promise<void> {
    await this.lock.with('records', async () => {
      const used = this.referenced();
      for (const digest of await this.content.list()) {
        if (!used.blobs.has(digest)) await this.content.remove(digest);
      }
      await this.snapshots.gc(used.chains);
    });
    this.changes++;
  }

  /**
   * Bytes and inodes of images and of containers' writable layers. Walking
   * the disk takes milliseconds, and kubelet asks every few seconds: the
   * figures are kept for USAGE_PERIOD_MS (containerd collects them every 10
   * s too) and refreshed in the background, or at once after an image change.
   */
  fsUsage(): Promise<FsUsage> {
    const cached = this.usage;
    if (cached && cached.changes === this.changes) {
      if (Date.now() - cached.at >= USAGE_PERIOD_MS) this.measure().catch(() => undefined);
      return cached.value;
    }
    return this.measure();
  }

  /** Measures usage once for the current state of the images (calls meanwhile share it). */
  private measure(): Promise<FsUsage> {
    if (this.measuring && this.measuring.changes === this.changes) return this.measuring.value;
    const entry = { at: Date.now(), changes: this.changes, value: this.measureUsage() };
    this.measuring = entry;
    entry.value
      .then(
        () => {
          if (!this.usage || this.usage.at <= entry.at) this.usage = entry;
        },
        () => undefined,
      )
      .finally(() => {
        if (this.measuring === entry) this.measuring = undefined;
      });
    return entry.value;
  }

  private async measureUsage(): Promise<FsUsage> {
    const [snapshots, content, containers] = await Promise.all([this.snapshots.usage(), diskUsage(this.content.root), diskUsage(this.snapshots.containersDir)]);
    return {
      images: { bytes: snapshots.bytes - containers.bytes + content.bytes, inodes: snapshots.inodes - containers.inodes + content.inodes },
      containers,
    };
  }
}

type FsUsage = { images: { bytes: number; inodes: number }; containers: { bytes: number; inodes: number } };
type UsageEntry = { at: number; changes: number; value: Promise<FsUsage> };
/** How long disk usage figures are served before they are measured again. */
const USAGE_PERIOD_MS = 10_000;

function addUnique(list: string[], value: string | undefined): void {
  if (value && !list.includes(value)) list.push(value);
}

/** Resolves with work, or rejects when this caller's signal aborts first. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The reason label of a failed pull: the status code it answers (UPPER_SNAKE, as tscri_grpc_requests_total's code). */
export function failureReason(err: unknown, signal: AbortSignal): string {
  const mapped = pullError('', err);
  if (mapped instanceof DomainError) return mapped.kind.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
  if (signal.aborted) return 'CANCELLED';
  return 'INTERNAL';
}
