// Test images built from Debian's busybox-static and pushed to a registry
// through the distribution API: layers (gzip, zstd or plain), whiteouts and
// opaque directories, a config with User/Env/Cmd, and multi-platform indexes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { BUSYBOX, busyboxApplets } from './busybox.ts';

export interface FileEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
}

export type Compression = 'gzip' | 'zstd' | 'none';

export interface Layer {
  blob: Buffer;
  diffId: string;
  mediaType: string;
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function tarOf(entries: FileEntry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const body = e.body === undefined ? '' : e.body;
    p.entry(
      {
        name: e.name,
        type: e.type ?? 'file',
        mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        linkname: e.linkname,
        mtime: new Date(1_700_000_000_000),
      },
      body,
    );
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function layer(entries: FileEntry[], compression: Compression = 'gzip', docker = false): Promise<Layer> {
  const tar = await tarOf(entries);
  if (compression === 'none') return { blob: tar, diffId: sha256(tar), mediaType: 'application/vnd.oci.image.layer.v1.tar' };
  if (compression === 'zstd') return { blob: zstdCompressSync(tar), diffId: sha256(tar), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' };
  return {
    blob: gzipSync(tar),
    diffId: sha256(tar),
    mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
  };
}

/** The busybox root filesystem as layer entries. */
export function busyboxEntries(): FileEntry[] {
  const entries: FileEntry[] = [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', body: readFileSync(BUSYBOX), mode: 0o755 },
    ...busyboxApplets().map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    { name: 'etc/', type: 'directory' },
    {
      name: 'etc/passwd',
      body: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    },
    { name: 'etc/group', body: 'root:x:0:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'root/', type: 'directory', mode: 0o700 },
    { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000 },
    { name: 'proc/', type: 'directory' },
    { name: 'sys/', type: 'directory' },
    { name: 'dev/', type: 'directory' },
    { name: 'var/www/', type: 'directory' },
  ];
  return entries;
}

export interface ImageSpec {
  layers: Layer[];
  config?: { User?: string; Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; StopSignal?: string; Volumes?: Record<string, object> };
  architecture?: string;
  variant?: string;
  /** Docker schema2 media types instead of OCI. */
  docker?: boolean;
}

export interface PushedImage {
  manifestDigest: string;
  configDigest: string;
  manifestSize: number;
  mediaType: string;
}

export async function pushBlob(registryUrl: string, repo: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const head = await fetch(`${registryUrl}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.ok) return digest;
  const start = await fetch(`${registryUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload start failed: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, registryUrl);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${await put.text()}`);
  return digest;
}

export async function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  manifest: object,
  mediaType: string,
): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
  if (res.status !== 201) throw new Error(`manifest push failed: ${res.status} ${await res.text()}`);
  return { digest: sha256(body), size: body.length };
}

export async function pushImage(registryUrl: string, repo: string, tag: string | undefined, spec: ImageSpec): Promise<PushedImage> {
  const config = {
    architecture: spec.architecture ?? 'amd64',
    ...(spec.variant ? { variant: spec.variant } : {}),
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['sh'], ...spec.config },
    rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
  };
  const configBlob = Buffer.from(JSON.stringify(config));
  const configDigest = await pushBlob(registryUrl, repo, configBlob);
  for (const l of spec.layers) await pushBlob(registryUrl, repo, l.blob);
  const mediaType = spec.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: spec.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: configBlob.length,
    },
    layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: sha256(l.blob), size: l.blob.length })),
  };
  const { digest, size } = await pushManifest(registryUrl, repo, tag ?? sha256(Buffer.from(JSON.stringify(manifest))), manifest, mediaType);
  return { manifestDigest: digest, configDigest, manifestSize: size, mediaType };
}

export async function pushIndex(
  registryUrl: string,
  repo: string,
  tag: string,
  images: Array<{ image: PushedImage; architecture: string; variant?: string }>,
): Promise<string> {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map(({ image, architecture, variant }) => ({
      mediaType: image.mediaType,
      digest: image.manifestDigest,
      size: image.manifestSize,
      platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
    })),
  };
  return (await pushManifest(registryUrl, repo, tag, index, mediaType)).digest;
}

/** A two-layer busybox image: the rootfs, then a layer with a whiteout and an opaque dir. */
export async function pushBusybox(
  registryUrl: string,
  repo: string,
  tag: string,
  options: { compression?: Compression; config?: ImageSpec['config']; docker?: boolean } = {},
): Promise<PushedImage> {
  const base = await layer(
    [...busyboxEntries(), { name: 'etc/removed', body: 'x' }, { name: 'var/cache/old', body: 'old' }],
    options.compression ?? 'gzip',
    options.docker,
  );
  const top = await layer(
    [
      { name: 'etc/.wh.removed' },
      { name: 'var/cache/.wh..wh..opq' },
      { name: 'var/cache/new', body: 'new' },
      { name: 'etc/motd', body: `image ${repo}:${tag}\n` },
    ],
    options.compression ?? 'gzip',
    options.docker,
  );
  return pushImage(registryUrl, repo, tag, { layers: [base, top], config: options.config, docker: options.docker });
}
