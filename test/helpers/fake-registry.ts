// A scriptable, fault-injecting registry: serves manifests and blobs from
// memory (with HTTP ranges, sha256 or sha512 digests) and lets each test
// replace the answer to any request, to play what a broken or hostile
// registry sends: endless or trickled bodies, huge declared lengths, stalls,
// rate limits with Retry-After, auth challenges, wrong digests and types.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { tarOf, type FileEntry } from './images.ts';

export type Algorithm = 'sha256' | 'sha512';

export const digestOf = (b: Buffer | string, algorithm: Algorithm = 'sha256') => `${algorithm}:${createHash(algorithm).update(b).digest('hex')}`;
export const sha256 = (b: Buffer | string) => digestOf(b, 'sha256');

/** Returns true when it answered the request itself. */
export type Hook = (req: IncomingMessage, res: ServerResponse, fake: FakeRegistry) => boolean | Promise<boolean>;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface AddedImage {
  configDigest: string;
  manifestDigest: string;
  manifestSize: number;
  layerDigests: string[];
  /** The manifest as served. */
  manifest: Buffer;
}

export interface ImageOptions {
  /** The image config's `config` (User, Env, Cmd...). */
  config?: object;
  /** The whole config blob, as is (for configs that are not what the image spec allows). */
  rawConfig?: Buffer;
  architecture?: string;
  /** The digest algorithm of every descriptor (config, layers) and of the manifest's own name. */
  algorithm?: Algorithm;
  /** Layer blobs as is, instead of gzipped tars of the entries. */
  rawLayers?: Buffer[];
  /** Changes the manifest object before it is serialised (wrong types, odd digests). */
  editManifest?: (manifest: Record<string, any>) => void;
}

export class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { body: Buffer; mediaType: string }>();
  /** Every request, with the time it arrived (epoch ms). */
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; at: number }> = [];
  hook: Hook | undefined;
  /** Bytes the fault helpers (endless, trickle) wrote; tests reset it. */
  sent = 0;
  private server: Server | undefined;
  port = 0;

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server!.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '', headers: req.headers, at: Date.now() });
    res.on('error', () => undefined);
    if (this.hook && (await this.hook(req, res, this))) return;
    this.serve(req, res);
  }

  /** The default answer: what a well-behaved registry sends. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    if (url === '/v2/') return void res.writeHead(200).end('{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
    if (m?.[2] === 'manifests') {
      const found = this.manifests.get(`${m[1]}:${m[3]}`) ?? this.manifests.get(`${m[1]}@${m[3]}`);
      if (!found)
        return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
      return void res.writeHead(200, { 'content-type': found.mediaType, 'docker-content-digest': sha256(found.body) }).end(found.body);
    }
    if (m?.[2] === 'blobs') {
      const blob = this.blobs.get(m[3]!);
      if (!blob) return void res.writeHead(404).end();
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        return void res
          .writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': blob.length - start })
          .end(blob.subarray(start));
      }
      return void res.writeHead(200, { 'content-length': blob.length }).end(blob);
    }
    res.writeHead(404).end();
  }

  /** Serves body as a manifest under repo for each reference (tags, and its digest in the given algorithm). */
  putManifest(
    repo: string,
    tags: string[],
    body: Buffer | object,
    mediaType = OCI_MANIFEST,
    algorithm: Algorithm = 'sha256',
  ): { digest: string; size: number } {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const digest = digestOf(bytes, algorithm);
    for (const tag of tags) this.manifests.set(`${repo}:${tag}`, { body: bytes, mediaType });
    this.manifests.set(`${repo}@${digest}`, { body: bytes, mediaType });
    return { digest, size: bytes.length };
  }

  /** Adds a single-platform OCI image under repo:tag and returns its digests. */
  async addImage(repo: string, tag: string, layers: FileEntry[][], options: ImageOptions = {}): Promise<AddedImage> {
    const algorithm = options.algorithm ?? 'sha256';
    const tars = await Promise.all(layers.map((entries) => tarOf(entries)));
    const blobs = options.rawLayers ?? tars.map((t) => gzipSync(t));
    const diffIds = options.rawLayers ? blobs.map((b) => sha256(b)) : tars.map((t) => sha256(t));
    const config =
      options.rawConfig ??
      Buffer.from(
        JSON.stringify({
          architecture: options.architecture ?? 'amd64',
          os: 'linux',
          config: options.config ?? {},
          rootfs: { type: 'layers', diff_ids: diffIds },
        }),
      );
    const configDigest = digestOf(config, algorithm);
    this.blobs.set(configDigest, config);
    const layerDigests = blobs.map((b) => digestOf(b, algorithm));
    blobs.forEach((b, i) => this.blobs.set(layerDigests[i]!, b));
    const manifest: Record<string, any> = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: blobs.map((b, i) => ({
        mediaType: options.rawLayers ? 'application/vnd.oci.image.layer.v1.tar' : OCI_LAYER_GZIP,
        digest: layerDigests[i],
        size: b.length,
      })),
    };
    options.editManifest?.(manifest);
    const body = Buffer.from(JSON.stringify(manifest));
    const { digest, size } = this.putManifest(repo, [tag], body, OCI_MANIFEST, algorithm);
    return { configDigest, manifestDigest: digest, manifestSize: size, layerDigests, manifest: body };
  }

  /** Adds an index naming the given manifests (linux, each with its architecture) under repo:tag. */
  addIndex(
    repo: string,
    tag: string,
    children: Array<{ digest: string; size: number; architecture?: string }>,
    algorithm: Algorithm = 'sha256',
  ): { digest: string; size: number } {
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((c) => ({
        mediaType: OCI_MANIFEST,
        digest: c.digest,
        size: c.size,
        platform: { os: 'linux', architecture: c.architecture ?? 'amd64' },
      })),
    };
    return this.putManifest(repo, [tag], index, OCI_INDEX, algorithm);
  }

  blobRequests(digest: string) {
    return this.requests.filter((r) => r.url.endsWith(`/blobs/${digest}`));
  }

  /** Requests for repo's manifests (any reference). */
  manifestRequests(repo: string) {
    return this.requests.filter((r) => r.url.startsWith(`/v2/${repo}/manifests/`));
  }

  /**
   * Answers with headers and then bytes for as long as the client reads
   * (or `limit` bytes), counting them in `sent`. Without a content-length in
   * headers the body is chunked: of undeclared length.
   */
  endless(res: ServerResponse, status = 200, headers: OutgoingHttpHeaders = {}, limit = Infinity): void {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    res.writeHead(status, headers);
    let written = 0;
    const pump = () => {
      while (!res.destroyed && written < limit) {
        written += chunk.length;
        this.sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (written >= limit && !res.destroyed) res.end();
    };
    pump();
  }

  /** Sends body in pieces of `size` bytes every `intervalMs`: slow, but never silent for longer. */
  trickle(res: ServerResponse, body: Buffer, headers: OutgoingHttpHeaders, size: number, intervalMs: number): void {
    res.writeHead(200, { ...headers, 'content-length': body.length });
    let offset = 0;
    const next = () => {
      if (res.destroyed) return;
      const piece = body.subarray(offset, offset + size);
      offset += piece.length;
      this.sent += piece.length;
      if (offset >= body.length) return void res.end(piece);
      res.write(piece);
      setTimeout(next, intervalMs);
    };
    next();
  }
}
