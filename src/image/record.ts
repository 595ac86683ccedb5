// Image records and their CRI views: id = config digest, tags and repo
// digests, size, user from the config's User, layers and chain ids.
import type { Image } from '../generated/runtime/v1/Image.ts';
import type { ImageConfig } from './types.ts';

export interface ImageRecord {
  /** The config digest (sha256:...). */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Compressed layers plus config, in bytes. */
  size: number;
  /** The whole OCI image config (architecture, os, config: { Env, Cmd, User... }, rootfs). */
  config: ImageConfig;
  manifestDigest: string;
  layers: Array<{ digest: string; mediaType: string; size: number }>;
  diffIds: string[];
  chainIds: string[];
  pinned: boolean;
  annotations: Record<string, string>;
  /** Milliseconds since the epoch of the first pull. */
  pulledAt: number;
}

/** uid or username from the config's User ("1000", "1000:1000", "name", "name:group"). */
export function imageUser(user: string | undefined): { uid?: number; username: string } {
  const who = (user ?? '').split(':')[0] ?? '';
  if (!who) return { username: '' };
  if (/^\d+$/.test(who)) return { uid: Number(who), username: '' };
  return { username: who };
}

export function toCriImage(r: ImageRecord): Image {
  const user = imageUser(r.config?.config?.User);
  return {
    id: r.id,
    repo_tags: r.repoTags,
    repo_digests: r.repoDigests,
    size: r.size,
    uid: user.uid === undefined ? null : { value: user.uid },
    username: user.username,
    spec: { image: r.id, annotations: r.annotations, user_specified_image: '', runtime_handler: '', image_ref: r.id },
    pinned: r.pinned,
  };
}

/** The host's platform as OCI names it. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch: Record<string, [string, string?]> = {
    x64: ['amd64'],
    arm64: ['arm64', 'v8'],
    arm: ['arm', 'v7'],
    ia32: ['386'],
    ppc64: ['ppc64le'],
    s390x: ['s390x'],
    riscv64: ['riscv64'],
  };
  const [architecture, variant] = arch[process.arch] ?? [process.arch];
  return { os: 'linux', architecture, variant };
}

/** Picks the manifest for the host from an index; undefined when none fits. */
export function choosePlatform<T extends { platform?: { os?: string; architecture?: string; variant?: string } }>(
  manifests: T[],
  host = hostPlatform(),
): T | undefined {
  const candidates = manifests.filter((m) => m.platform?.os === host.os && m.platform?.architecture === host.architecture);
  return candidates.find((m) => !host.variant || !m.platform?.variant || m.platform.variant === host.variant) ?? candidates[0];
}
