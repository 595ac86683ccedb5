// A scriptable registry for unit tests: serves manifests and blobs from
// memory (with HTTP ranges) and lets each test replace the answer to any
// request, to play failures a real registry rarely produces on demand.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { tarOf, type FileEntry } from '../../helpers/images.ts';

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Returns true when it answered the request itself. */
export type Hook = (req: IncomingMessage, res: ServerResponse, fake: FakeRegistry) => boolean | Promise<boolean>;

export class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { body: Buffer; mediaType: string }>();
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> = [];
  hook: Hook | undefined;
  private server: Server | undefined;
  port = 0;

  get host(): string {
    return `127.0.0.1:${this.port}`;
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
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '', headers: req.headers });
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
      if (!found) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return void res.writeHead(200, { 'content-type': found.mediaType, 'docker-content-digest': sha256(found.body) }).end(found.body);
    }
    if (m?.[2] === 'blobs') {
      const blob = this.blobs.get(m[3]!);
      if (!blob) return void res.writeHead(404).end();
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        return void res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': blob.length - start }).end(blob.subarray(start));
      }
      return void res.writeHead(200, { 'content-length': blob.length }).end(blob);
    }
    res.writeHead(404).end();
  }

  /** Adds a single-platform OCI image under repo:tag and returns its digests. */
  async addImage(repo: string, tag: string, layers: FileEntry[][], options: { config?: object; architecture?: string } = {}): Promise<{ configDigest: string; manifestDigest: string; layerDigests: string[] }> {
    const tars = await Promise.all(layers.map((entries) => tarOf(entries)));
    const blobs = tars.map((t) => gzipSync(t));
    const config = Buffer.from(JSON.stringify({ architecture: options.architecture ?? 'amd64', os: 'linux', config: options.config ?? {}, rootfs: { type: 'layers', diff_ids: tars.map(sha256) } }));
    this.blobs.set(sha256(config), config);
    blobs.forEach((b) => this.blobs.set(sha256(b), b));
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: blobs.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(b), size: b.length })),
    }));
    this.manifests.set(`${repo}:${tag}`, { body: manifest, mediaType });
    this.manifests.set(`${repo}@${sha256(manifest)}`, { body: manifest, mediaType });
    return { configDigest: sha256(config), manifestDigest: sha256(manifest), layerDigests: blobs.map(sha256) };
  }

  blobRequests(digest: string) {
    return this.requests.filter((r) => r.url.endsWith(`/blobs/${digest}`));
  }
}
