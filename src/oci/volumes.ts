// Anonymous volumes for an image's VOLUMEs, as containerd makes them: each
// path the image config lists under "Volumes" (and no request mount covers)
// gets a directory of its own under <root>/volumes/<container id>/, filled
// with what the image has at that path (ownership, modes, symlinks, hard
// links, device nodes and extended attributes kept), and bind-mounted
// read-write there. They live as long as the container: RemoveContainer
// deletes them. Writes to them do not land in the container's writable
// layer, so they are not part of a checkpoint's rootfs diff either.
import { spawn } from 'node:child_process';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Mount__Output } from '../generated/runtime/v1/Mount.ts';
import { failedPrecondition, internal, resourceExhausted } from '../errors.ts';
import { resolveInRoot } from './rootfs-files.ts';

/** More VOLUMEs than this is not an image anyone builds; it is refused rather than copied. */
export const MAX_IMAGE_VOLUMES = 128;
/** How much of cp's complaint is quoted. */
const STDERR_LIMIT = 4096;

/** Where the anonymous volumes of a container live. */
export function anonymousVolumesDir(volumesRoot: string, containerId: string): string {
  return join(volumesRoot, containerId);
}

/**
 * The container paths of the image's VOLUMEs that need an anonymous volume:
 * absolute and normalised (a relative path is taken from /, as containerd
 * does), in a stable order, without those a request mount already covers.
 * The image config is type-checked at pull time; anything else is refused.
 */
export function imageVolumePaths(volumes: unknown, requestMounts: Array<{ container_path: string }>, imageName: string): string[] {
  if (volumes === undefined || volumes === null) return [];
  if (typeof volumes !== 'object' || Array.isArray(volumes)) throw failedPrecondition(`the image ${imageName} has a config whose Volumes is not an object`);
  const names = Object.keys(volumes);
  if (names.length > MAX_IMAGE_VOLUMES)
    throw failedPrecondition(`the image ${imageName} declares ${names.length} VOLUMEs; at most ${MAX_IMAGE_VOLUMES} are supported`);
  const covered = new Set(requestMounts.map((m) => posix.normalize(m.container_path || '/').replace(/(.)\/+$/, '$1')));
  const paths = new Set<string>();
  for (const name of names) {
    const shown = JSON.stringify(name.slice(0, 256));
    if (!name || name.includes('\0') || name.length > 4096)
      throw failedPrecondition(`the image ${imageName} declares VOLUME ${shown}, which is not a usable path`);
    const path = posix.normalize(`/${name}`).replace(/(.)\/+$/, '$1');
    if (path === '/')
      throw failedPrecondition(`the image ${imageName} declares VOLUME ${shown}, the root directory; a volume cannot replace the root filesystem`);
    if (!covered.has(path)) paths.add(path);
  }
  return [...paths].sort();
}

/** A CRI mount for an anonymous volume: read-write, private, like containerd's. */
function volumeMount(containerPath: string, hostPath: string): Mount__Output {
  return {
    container_path: containerPath,
    host_path: hostPath,
    readonly: false,
    selinux_relabel: false,
    propagation: 'PROPAGATION_PRIVATE',
    uidMappings: [],
    gidMappings: [],
    recursive_read_only: false,
    image: null,
    image_sub_path: '',
    mount_options: [],
  };
}

/**
 * Makes one directory per path under dir, copies the image's content at that
 * path (read through rootfs, symlinks resolved inside it) into it, and
 * returns the mounts. A path the image does not have gets an empty volume.
 */
export async function createAnonymousVolumes(rootfs: string, dir: string, paths: string[]): Promise<Mount__Output[]> {
  if (!paths.length) return [];
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mounts: Mount__Output[] = [];
  for (const [i, path] of paths.entries()) {
    const target = join(dir, String(i));
    await mkdir(target, { mode: 0o755 });
    const source = await resolveInRoot(rootfs, path).catch(() => undefined);
    const info = source ? await lstat(source).catch(() => undefined) : undefined;
    if (info && !info.isDirectory()) throw failedPrecondition(`the image's VOLUME ${path} is not a directory in the image`);
    if (info) await copyTree(source!, target, path);
    mounts.push(volumeMount(path, target));
  }
  return mounts;
}

/** cp -a: the one tool that keeps everything a layer can hold (devices, hard links, xattrs) without following symlinks. */
function copyTree(source: string, target: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', ['-a', '--', `${source}/.`, target], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      if (stderr.length < STDERR_LIMIT) stderr += String(d);
    });
    child.once('error', (err) => reject(internal(`cannot copy the image's content of VOLUME ${path}: ${err.message}`)));
    child.once('close', (code) => {
      if (code === 0) return resolve();
      const detail = stderr.trim().split('\n').slice(-1)[0]?.slice(0, 300) ?? `exit code ${code}`;
      if (/No space left on device|Disk quota exceeded/.test(stderr)) {
        return reject(resourceExhausted(`cannot copy the image's content of VOLUME ${path}: ${/quota/i.test(stderr) ? 'EDQUOT' : 'ENOSPC'} (${detail})`));
      }
      reject(internal(`cannot copy the image's content of VOLUME ${path}: ${detail}`));
    });
  });
}

/**
 * Deletes a container's anonymous volumes (nothing to do when it had none),
 * with deleteDir when given (a trash that deletes after the call).
 */
export async function removeAnonymousVolumes(volumesRoot: string, containerId: string, deleteDir?: (path: string) => Promise<void>): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(containerId)) return;
  const dir = anonymousVolumesDir(volumesRoot, containerId);
  if (deleteDir) await deleteDir(dir);
  else await rm(dir, { recursive: true, force: true });
}
