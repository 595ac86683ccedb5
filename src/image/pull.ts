// Pulling one image: resolve the reference on the configured endpoints
// (mirrors first), choose the host's platform from an index, fetch and
// verify the config and layers (bounded concurrency, progress deadline),
// and unpack each layer once into its snapshot.
import type { ImageConfig, Manifest } from './types.ts';
import { Readable } from 'node:stream';
import { metrics } from '../metrics.ts';
import { CredentialSourceError } from './cred-helper.ts';
import type { Logger } from '../log.ts';
import type { Config } from '../config/config.ts';
import type { SnapshotStore } from '../snapshot/snapshots.ts';
import { chainIds } from '../snapshot/snapshots.ts';
import { LayerError, declaredCompression } from '../snapshot/layer.ts';
import { diskFullCode } from '../store/disk-full.ts';
import { endpointsFor, type RegistryEndpoint } from './hosts.ts';
import { RegistryClient, RegistryError, backoff, sleep, type Credentials } from './registry.ts';
import { CONFIG_LIMIT, MANIFEST_LIMIT, TooLargeError, errorReason, formatSize, readBody } from './body.ts';
import { formatReference, repository, type ImageReference } from './reference.ts';
import { DigestMismatchError, type ContentStore } from './content.ts';
import { choosePlatform, hostPlatform, type ImageRecord } from './record.ts';
import { algorithmOf, digestOf, digestProblem, isDigest } from './digest.ts';
import { ImageFormatError, checkConfig, checkIndex, checkManifest } from './validate.ts';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export class NotFoundError extends Error {}

/** Where one blob of a pull stands, for the progress log. */
export interface BlobProgress {
  /** config or layer */
  kind: string;
  state: 'downloading' | 'unpacking' | 'done';
  done: number;
  total: number;
}

/** The blobs a pull is fetching, and the bytes it has received. */
export class PullProgress {
  readonly blobs = new Map<string, BlobProgress>();
  received = 0;

  set(digest: string, kind: string, state: BlobProgress['state'], total: number): void {
    const current = this.blobs.get(digest);
    this.blobs.set(digest, { kind, state, total, done: state === 'done' ? total : (current?.done ?? 0) });
  }

  update(digest: string, bytes: number, done: number): void {
    this.received += bytes;
    const blob = this.blobs.get(digest);
    if (blob) blob.done = done;
  }
}
/** The pull did not finish within [image] pull_timeout_seconds. */
export class PullTimeoutError extends Error {}
/** No bytes arrived from the registry for the progress deadline. */
export class PullStalledError extends Error {}

export interface PullContext {
  config: Config;
  log: Logger;
  content: ContentStore;
  snapshots: SnapshotStore;
  signal: AbortSignal;
  /** Epoch ms by which the pull must end (Infinity when nothing limits it). */
  deadline?: () => number;
  /** The credentials for one endpoint (credentials.ts decides which may go where). */
  credentials: (endpoint: RegistryEndpoint) => Promise<Credentials>;
  /** Records what this pull created, so a failed pull can remove it. */
  created: { blobs: Set<string>; chains: Set<string> };
  /** Blobs and snapshots this pull relies on, which garbage collection must keep while it runs. */
  using: { blobs: Set<string>; chains: Set<string> };
  /** What is being fetched, for the progress log; bytes for the metrics. */
  progress?: PullProgress;
}

interface Resolved {
  client: RegistryClient;
  manifest: Manifest;
  manifestDigest: string;
}

/**
 * A progress deadline: aborts its signal when arm() was not called for the
 * configured time. Each received chunk re-arms it.
 */
class Stall {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly ms: number;
  private readonly message: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(ctx: PullContext, what: string, host: string) {
    const seconds = ctx.config.image.progress_deadline_seconds;
    this.ms = seconds * 1000;
    this.message = `registry ${host} sent no data for ${seconds}s while fetching ${what} ([image] progress_deadline_seconds)`;
    this.signal = AbortSignal.any([ctx.signal, this.controller.signal]);
    this.arm();
  }

  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  arm = (): void => {
    if (this.ms <= 0 || this.fired) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(new PullStalledError(this.message)), this.ms);
  };

  /** Stops the timer while tscri itself waits (arm() starts it again). */
  pause = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  };

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  /** The error to report: the stall when it fired, else err. */
  error(err: unknown): unknown {
    return this.fired ? this.controller.signal.reason : err;
  }
}

/** A manifest or index as fetched: parsed, with the digest it is known by. */
interface Fetched {
  doc: Record<string, unknown>;
  mediaType: string;
  digest: string;
}

/**
 * Fetches a manifest or index by tag or digest. Content named by a digest
 * must match it (in that digest's algorithm) and, when a descriptor named
 * it, its size; content fetched by tag must match the Docker-Content-Digest
 * the registry sends with it. By tag its digest is the sha256 of its bytes.
 */
async function fetchManifest(client: RegistryClient, reference: string, ctx: PullContext, declaredSize?: number): Promise<Fetched> {
  const host = client.endpoint.host;
  const stall = new Stall(ctx, `manifest ${reference}`, host);
  try {
    const res = await client.get(`manifests/${reference}`, { headers: { accept: MANIFEST_TYPES.join(', ') }, signal: stall.signal, progress: stall });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new NotFoundError(`manifest ${reference} not found`);
    }
    if (res.status === 401 || res.status === 403) {
      const reason = await errorReason(res, stall.arm);
      throw new RegistryError(`registry ${host} refused access to the image (${res.status}${reason ? `: ${reason}` : ''}); check the credentials`, 401);
    }
    if (!res.ok) {
      const reason = await errorReason(res, stall.arm);
      throw new RegistryError(`registry ${host} answered ${res.status} for manifest ${reference}${reason ? `: ${reason}` : ''}`, res.status);
    }
    const body = await readBody(res, MANIFEST_LIMIT, `manifest ${reference} from ${host}`, stall.arm);
    const byDigest = isDigest(reference);
    if (byDigest && digestOf(body, algorithmOf(reference)) !== reference)
      throw new DigestMismatchError(`manifest content does not match its digest ${reference}`);
    if (declaredSize !== undefined && body.length !== declaredSize)
      throw new DigestMismatchError(`manifest ${reference} has ${body.length} bytes, ${declaredSize} were declared`);
    const announced = res.headers.get('docker-content-digest');
    if (!byDigest && announced) {
      const problem = digestProblem(announced);
      if (problem) throw new ImageFormatError(`the Docker-Content-Digest registry ${host} sent for manifest ${reference} ${problem}`);
      if (digestOf(body, algorithmOf(announced)) !== announced)
        throw new DigestMismatchError(`manifest ${reference} does not match the digest ${announced} registry ${host} announced for it`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new ImageFormatError(`registry ${host} sent a manifest for ${reference} that is not JSON`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new ImageFormatError(`registry ${host} sent a manifest for ${reference} that is not a JSON object`);
    const parsed = doc as Record<string, unknown>;
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const mediaType = typeof parsed.mediaType === 'string' && parsed.mediaType ? parsed.mediaType : contentType;
    return { doc: parsed, mediaType, digest: byDigest ? reference : digestOf(body) };
  } catch (err) {
    throw stall.error(err);
  } finally {
    stall.clear();
  }
}

const isIndex = (f: Fetched) => INDEX_TYPES.has(f.mediaType) || Array.isArray(f.doc.manifests);

/** Errors about the content itself: every endpoint would serve the same, so none is tried after them. */
function isContentError(err: unknown): boolean {
  return err instanceof PlatformError || err instanceof DigestMismatchError || err instanceof TooLargeError || err instanceof ImageFormatError;
}

/** Picks the host's manifest from an index and fetches it. */
async function fromIndex(client: RegistryClient, index: Fetched, ref: ImageReference, ctx: PullContext): Promise<Fetched> {
  const doc = index.doc;
  checkIndex(doc, `the index of ${formatReference(ref)}`);
  const manifests = doc.manifests;
  const chosen = choosePlatform(manifests);
  if (!chosen) {
    const host = hostPlatform();
    const offered = manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ''}`).join(', ');
    throw new PlatformError(
      `image ${formatReference(ref)} has no ${host.os}/${host.architecture}${host.variant ? `/${host.variant}` : ''} variant (it offers ${offered || 'none'})`,
    );
  }
  if (chosen.size > MANIFEST_LIMIT)
    throw new TooLargeError(`manifest ${chosen.digest} declares ${chosen.size} bytes, more than the ${formatSize(MANIFEST_LIMIT)} tscri accepts`);
  const manifest = await fetchManifest(client, chosen.digest, ctx, chosen.size);
  if (isIndex(manifest))
    throw new ImageFormatError(
      `the index of ${formatReference(ref)} names another index (${chosen.digest}) for this platform; nested indexes are not supported`,
    );
  return manifest;
}

/**
 * Finds the image manifest for the host platform on the first endpoint that
 * has it. A tag is resolved only on hosts with the "resolve" capability; a
 * digest needs only "pull".
 */
async function resolve(ref: ImageReference, ctx: PullContext): Promise<Resolved> {
  const wanted = ref.digest ? 'pull' : 'resolve';
  const endpoints = (await endpointsFor(ctx.config.registry.config_path, ref.domain)).filter(
    (e) => e.capabilities.includes(wanted) && e.capabilities.includes('pull'),
  );
  if (!endpoints.length)
    throw new RegistryError(`no host configured for ${ref.domain} can ${wanted} images; check ${ctx.config.registry.config_path}/${ref.domain}/hosts.toml`);
  const failures: string[] = [];
  let notFound = 0;
  let stalled = false;
  for (const endpoint of endpoints) {
    try {
      const client = new RegistryClient(endpoint, ref.path, await ctx.credentials(endpoint), ctx.signal, ctx.deadline);
      const top = await fetchManifest(client, ref.digest ?? ref.tag!, ctx);
      // The repo digest is the digest the reference resolves to: the index's, when there is one.
      const manifest = isIndex(top) ? await fromIndex(client, top, ref, ctx) : top;
      const doc = manifest.doc;
      checkManifest(doc, `the manifest of ${formatReference(ref)}`);
      return { client, manifest: doc, manifestDigest: top.digest };
    } catch (err) {
      // A credential helper or auth file that is broken is the node's to fix: no other endpoint is tried.
      if (ctx.signal.aborted || isContentError(err) || err instanceof CredentialSourceError) throw err;
      if (err instanceof NotFoundError) notFound++;
      // A mirror that stalls is passed over like one that fails; the pull then reports the stall.
      if (err instanceof PullStalledError) stalled = true;
      const message = (err as Error).message ?? String(err);
      failures.push(message.includes(endpoint.host) ? message : `${endpoint.host}: ${message}`);
      ctx.log.debug({ endpoint: endpoint.url, err: (err as Error).message }, 'endpoint failed; trying the next');
    }
  }
  const message = failures.join('; ');
  if (notFound === failures.length) throw new NotFoundError(message);
  if (stalled) throw new PullStalledError(message);
  throw new RegistryError(message, failures.some((f) => /credentials|refused access/.test(f)) ? 401 : undefined);
}

export class PlatformError extends NotFoundError {}

const ATTEMPTS = 4;

/** The first byte of a 206 answer's Content-Range, or undefined. */
export function rangeStart(contentRange: string | null): number | undefined {
  const m = /^bytes (\d+)-/.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Downloads a blob into the content store unless present. Interrupted
 * transfers are retried with backoff, continuing after the bytes already
 * received when the registry supports ranges; a transfer that receives no
 * bytes for the progress deadline fails the pull.
 */
async function download(client: RegistryClient, digest: string, size: number | undefined, ctx: PullContext, kind: string): Promise<void> {
  ctx.using.blobs.add(digest);
  const created = await ctx.content.ingest(digest, size, async (writer) => {
    ctx.progress?.set(digest, kind, 'downloading', size ?? 0);
    let lastError: unknown;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt) await sleep(backoff(attempt), ctx.signal);
      const stall = new Stall(ctx, `blob ${digest}`, client.endpoint.host);
      try {
        await writer.fetch(
          async (offset) => {
            const res = await client.get(`blobs/${digest}`, { headers: offset ? { range: `bytes=${offset}-` } : {}, signal: stall.signal, progress: stall });
            if (!res.ok || !res.body) {
              const reason = await errorReason(res, stall.arm);
              throw new RegistryError(`registry ${client.endpoint.host} answered ${res.status} for blob ${digest}${reason ? `: ${reason}` : ''}`, res.status);
            }
            const start = res.status === 206 ? (rangeStart(res.headers.get('content-range')) ?? 0) : 0;
            return { stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), offset: start };
          },
          {
            signal: stall.signal,
            onProgress: (bytes, done) => {
              stall.arm();
              metrics.imagePullBytes.inc(bytes);
              ctx.progress?.update(digest, bytes, done);
            },
          },
        );
        return;
      } catch (err) {
        if (stall.fired) throw stall.error(err);
        if (ctx.signal.aborted || err instanceof DigestMismatchError) throw err;
        // The client already retried what the registry refused (5xx, 429): only interrupted transfers are tried again here.
        if (err instanceof RegistryError || err instanceof TooLargeError || diskFullCode(err)) throw err;
        lastError = err;
        ctx.log.debug({ blob: digest, attempt, err: (err as Error).message }, 'blob transfer failed; retrying');
      } finally {
        stall.clear();
      }
    }
    throw lastError instanceof RegistryError
      ? lastError
      : new RegistryError(`cannot download blob ${digest} from ${client.endpoint.host}: ${(lastError as Error)?.message ?? lastError}`);
  });
  if (created) ctx.created.blobs.add(digest);
}

/**
 * Runs fn over items with at most limit running at once. The first failure
 * aborts the signal given to the others, and is thrown once every running
 * call has settled: nothing keeps writing after the caller cleans up.
 */
async function bounded<T>(items: T[], limit: number, signal: AbortSignal, fn: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const each = AbortSignal.any([signal, controller.signal]);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      try {
        await fn(items[next++]!, each);
      } catch (err) {
        if (!failure) {
          failure = { err };
          controller.abort(err);
        }
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.err;
}

/** Pulls ref; returns the image record (not yet stored). */
export async function pullImage(
  ref: ImageReference,
  ctx: PullContext,
): Promise<Omit<ImageRecord, 'repoTags' | 'repoDigests' | 'pinned' | 'pulledAt'> & { repository: string }> {
  const name = formatReference(ref);
  // Digests, sizes and types of the manifest were checked by resolve().
  const { client, manifest, manifestDigest } = await resolve(ref, ctx);
  const configDigest = manifest.config.digest;
  const configSize = manifest.config.size;
  if (configSize > CONFIG_LIMIT)
    throw new TooLargeError(`the image config ${configDigest} declares ${configSize} bytes, more than the ${formatSize(CONFIG_LIMIT)} tscri accepts`);
  const layers: ImageRecord['layers'] = manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType ?? '', size: l.size }));
  // A layer tscri cannot unpack fails the pull before anything is downloaded.
  layers.forEach((l) => declaredCompression(l.mediaType));
  await download(client, configDigest, configSize, ctx, 'config');
  ctx.progress?.set(configDigest, 'config', 'done', configSize);
  const config = parseConfig(await readAll(ctx.content.read(configDigest)), configDigest);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layers.length) throw new ImageFormatError(`image ${name} lists ${layers.length} layers but its config has ${diffIds.length} diff ids`);
  const chains = chainIds(diffIds);
  await bounded(
    layers.map((layer, i) => ({ layer, i })),
    ctx.config.image.max_concurrent_downloads,
    ctx.signal,
    async ({ layer, i }, signal) => {
      const layerCtx = { ...ctx, signal };
      const chain = chains[i]!;
      ctx.using.chains.add(chain);
      if (ctx.snapshots.has(chain)) return;
      await download(client, layer.digest, layer.size, layerCtx, 'layer');
      const existed = ctx.snapshots.has(chain);
      ctx.progress?.set(layer.digest, 'layer', 'unpacking', layer.size);
      await ctx.snapshots
        .ensure(chain, diffIds[i]!, async () => ({ stream: ctx.content.read(layer.digest), mediaType: layer.mediaType }), signal)
        .catch((err: unknown) => {
          throw err instanceof LayerError ? new LayerError(`layer ${layer.digest}: ${err.message}`) : err;
        });
      ctx.progress?.set(layer.digest, 'layer', 'done', layer.size);
      if (!existed) ctx.created.chains.add(chain);
    },
  );
  return {
    id: configDigest,
    repository: repository(ref),
    size: layers.reduce((sum, l) => sum + l.size, 0) + configSize,
    config,
    manifestDigest,
    layers,
    diffIds,
    chainIds: chains,
    annotations: manifest.annotations ?? {},
  };
}

/** The image config from its blob: JSON of the types the image spec gives each field tscri reads. */
function parseConfig(text: string, digest: string): ImageConfig {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    throw new ImageFormatError(`the image config ${digest} is not valid JSON`);
  }
  checkConfig(config, `the image config ${digest}:`);
  return config;
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
