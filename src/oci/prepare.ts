// Gathers what buildSpec needs beyond the request: the container's
// /etc/passwd and /etc/group (read inside its rootfs), requested devices,
// a Localhost seccomp profile, and image volumes mounted read-only.
import { lstat, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import type { SpecRequest } from './request.ts';
import type { Spec } from './types.ts';
import type { SnapshotStore } from '../snapshot/snapshots.ts';
import { mountReadonlyImage, unmount } from '../snapshot/rootfs.ts';
import { buildSpec, SpecError, type HostFacts } from './spec.ts';
import { readInRoot, resolveInRoot } from './rootfs-files.ts';
import { deviceAt } from './host.ts';
import { seccompChoice } from './security.ts';
import { checkUserNamespace, type RuntimeFeatures } from './features.ts';
import { anonymousVolumesDir, createAnonymousVolumes, imageVolumePaths } from './volumes.ts';
import { applyCdiEdits, loadCdiRegistry, requestedCdiDevices, resolveCdiDevices, type ResolvedCdi } from './cdi.ts';
import { seccompProfileProblem } from './seccomp.ts';
import { quote } from '../errors.ts';

export interface SpecSources {
  host: HostFacts;
  snapshots: SnapshotStore;
  resolveImage(ref: string): { id: string; chainIds: string[] } | undefined;
  /** What the pod's runtime handler supports; without it the host facts alone decide. */
  runtimeFeatures?: RuntimeFeatures;
  /** Anonymous volumes for the image's VOLUMEs: where they live, and whether the configuration ignores them. */
  volumes?: { root: string; ignore(): boolean };
  /** The CDI spec directories, lowest priority first. */
  cdiSpecDirs?: () => string[];
}

/** Where a container's image volumes are mounted (beside its rootfs). */
export function imageVolumesDir(rootfs: string): string {
  return join(dirname(rootfs), 'image-volumes');
}

async function mountImageVolumes(req: SpecRequest, sources: SpecSources): Promise<Record<string, string>> {
  const mounts: Record<string, string> = {};
  let n = 0;
  for (const m of req.config.mounts ?? []) {
    const ref = m.image?.image;
    if (!ref || mounts[ref]) continue;
    const image = sources.resolveImage(ref);
    if (!image) throw new SpecError(`image ${quote(ref)} for the volume at ${m.container_path} is not present on this node; pull it first`);
    const target = join(imageVolumesDir(req.rootfs), String(n));
    await mountReadonlyImage(sources.snapshots, `${req.id}-vol${n}`, image.chainIds, target);
    mounts[ref] = target;
    n += 1;
  }
  for (const m of req.config.mounts ?? []) {
    if (m.image?.image && m.image_sub_path) await checkImageSubPath(mounts[m.image.image]!, m.image_sub_path, m.container_path);
  }
  return mounts;
}

/**
 * An image_sub_path must be a directory of the image reached without
 * symlinks: the bind mount's source is the plain path under the volume, so
 * a symlink on the way (which the kernel would follow on the node) could
 * name anything outside the image.
 */
export async function checkImageSubPath(root: string, sub: string, containerPath: string): Promise<void> {
  const shown = JSON.stringify(sub.slice(0, 256));
  if (sub.includes('\0')) throw new SpecError(`image_sub_path ${shown} holds a NUL byte`);
  const relative = normalize(sub).replace(/^\/+|\/+$/g, '');
  if (relative.split('/').includes('..')) throw new SpecError(`image_sub_path ${shown} escapes the image`);
  const plain = join(root, relative);
  let resolved: string;
  try {
    resolved = await resolveInRoot(root, relative);
  } catch {
    throw new SpecError(`image_sub_path ${shown} of the volume at ${containerPath} has too many symlinks`);
  }
  if (resolved !== plain)
    throw new SpecError(`image_sub_path ${shown} of the volume at ${containerPath} goes through a symlink in the image; name the directory it points to`);
  const info = await lstat(plain).catch(() => undefined);
  if (!info) throw new SpecError(`image_sub_path ${shown} does not exist in the image of the volume at ${containerPath}`);
  if (!info.isDirectory()) throw new SpecError(`image_sub_path ${shown} of the volume at ${containerPath} is not a directory; only directories can be mounted`);
}

/** Unmounts a container's image volumes and releases their snapshots. */
export async function removeImageVolumes(snapshots: SnapshotStore, containerId: string, rootfs: string): Promise<void> {
  const dir = imageVolumesDir(rootfs);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    await unmount(join(dir, name));
    await snapshots.release(`${containerId}-vol${name}`);
  }
  await rm(dir, { recursive: true, force: true });
}

function requestedDevices(req: SpecRequest) {
  return (req.config.devices ?? []).map((d) => {
    const device = deviceAt(d.host_path);
    if (!device) throw new SpecError(`device ${quote(d.host_path)} is not a character or block device on this node`);
    if (!d.container_path.startsWith('/')) throw new SpecError(`device container_path ${quote(d.container_path)} must be absolute`);
    if (d.permissions && !/^[rwm]+$/.test(d.permissions)) throw new SpecError(`device permissions ${quote(d.permissions)} must be made of r, w and m`);
    return { ...device, containerPath: d.container_path, permissions: d.permissions || 'rwm' };
  });
}

async function localhostSeccomp(req: SpecRequest): Promise<object | undefined> {
  const sc = req.config.linux?.security_context;
  const choice = seccompChoice(sc?.seccomp, sc?.seccomp_profile_path);
  if (choice.kind !== 'localhost') return undefined;
  return readLocalhostProfile(choice.ref ?? '');
}

/** The largest Localhost seccomp profile read (containerd's default profile is about 20 KiB). */
export const MAX_SECCOMP_PROFILE_BYTES = 1 << 20;

/**
 * A Localhost seccomp profile from the node. Errors name the file and what is
 * wrong with it but never quote it: the path may name any file on the node.
 */
export async function readLocalhostProfile(ref: string): Promise<object> {
  const shown = JSON.stringify(ref.slice(0, 256));
  if (!ref.startsWith('/') || ref.includes('\0')) throw new SpecError(`seccomp profile ${shown} must be an absolute path on the node`);
  let text: string;
  let handle;
  try {
    handle = await open(ref, 'r');
    const info = await handle.stat();
    if (!info.isFile()) throw new SpecError(`seccomp profile ${shown} is not a regular file`);
    if (info.size > MAX_SECCOMP_PROFILE_BYTES)
      throw new SpecError(`seccomp profile ${shown} is larger than ${MAX_SECCOMP_PROFILE_BYTES >> 10} KiB; it is not a seccomp profile`);
    const buffer = Buffer.alloc(MAX_SECCOMP_PROFILE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_SECCOMP_PROFILE_BYTES)
      throw new SpecError(`seccomp profile ${shown} is larger than ${MAX_SECCOMP_PROFILE_BYTES >> 10} KiB; it is not a seccomp profile`);
    text = buffer.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof SpecError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new SpecError(
      `cannot read seccomp profile ${shown}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'read error')}`,
    );
  } finally {
    await handle?.close();
  }
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch {
    // The parser's message quotes the file; it is not passed on.
    throw new SpecError(`seccomp profile ${shown} is not JSON; it is not a seccomp profile`);
  }
  const problem = seccompProfileProblem(profile);
  if (problem) throw new SpecError(`seccomp profile ${shown} is not a seccomp profile: ${problem}`);
  return profile as object;
}

/** The host facts as the pod's runtime handler sees them: rro needs the kernel and the runtime. */
function handlerHost(sources: SpecSources, handler: string): SpecSources['host'] {
  if (!sources.runtimeFeatures) return sources.host;
  return { ...sources.host, rroSupported: sources.host.rroSupported && sources.runtimeFeatures.get(handler).recursiveReadOnlyMounts };
}

/** The request's mounts plus an anonymous volume for each image VOLUME they leave uncovered. */
async function withAnonymousVolumes(req: SpecRequest, sources: SpecSources): Promise<SpecRequest['config']['mounts']> {
  const requested = req.config.mounts ?? [];
  if (!sources.volumes || sources.volumes.ignore()) return req.config.mounts;
  const name = req.image.repo_tags[0] ?? req.image.id;
  const paths = imageVolumePaths(req.image.config?.config?.Volumes, requested, name);
  if (!paths.length) return req.config.mounts;
  const created = await createAnonymousVolumes(req.rootfs, anonymousVolumesDir(sources.volumes.root, req.id), paths);
  return [...requested, ...created];
}

export async function makeSpec(req: SpecRequest, sources: SpecSources): Promise<Spec> {
  // A container never silently runs in the node's user namespace when it asks for the pod's own.
  if (sources.runtimeFeatures)
    checkUserNamespace(req.config.linux?.security_context?.namespace_options?.userns_options, req.sandbox.runtimeHandler ?? '', sources.runtimeFeatures);
  await createMissingHostPaths(req);
  const cdi = await cdiDevices(req, sources);
  const [passwd, group] = await Promise.all([readInRoot(req.rootfs, '/etc/passwd'), readInRoot(req.rootfs, '/etc/group')]);
  const mounts = await withAnonymousVolumes(req, sources);
  const spec = buildSpec({
    containerId: req.id,
    config: mounts === req.config.mounts ? req.config : { ...req.config, mounts },
    sandbox: req.sandbox,
    image: { config: req.image.config?.config ?? {}, name: req.image.repo_tags[0] ?? req.image.id },
    rootfs: req.rootfs,
    cgroupsPath: req.cgroupsPath,
    etcFiles: { passwd, group },
    host: handlerHost(sources, req.sandbox.runtimeHandler ?? ''),
    imageMounts: await mountImageVolumes(req, sources),
    seccompLocalhost: await localhostSeccomp(req),
    devices: [...requestedDevices(req), ...(cdi?.devices ?? [])],
    targetPidNamespace: req.targetPidNamespace,
  });
  if (cdi) applyCdiEdits(spec, cdi.edits);
  return spec;
}

/**
 * A bind mount whose host path does not exist gets it made as a directory,
 * as containerd does (kubelet's hostPath volumes of no type rely on it).
 */
async function createMissingHostPaths(req: SpecRequest): Promise<void> {
  for (const m of req.config.mounts ?? []) {
    if (!m.host_path || m.image?.image) continue;
    const exists = await stat(m.host_path).then(
      () => true,
      (err) => {
        if (err.code === 'ENOENT') return false;
        throw new SpecError(`cannot use mount host_path ${quote(m.host_path)}: ${err.code ?? err.message}`);
      },
    );
    if (!exists) await mkdir(m.host_path, { recursive: true, mode: 0o755 });
  }
}

/** The CDI devices the request names, resolved in the spec directories; undefined when it names none. */
async function cdiDevices(req: SpecRequest, sources: SpecSources): Promise<ResolvedCdi | undefined> {
  const names = requestedCdiDevices(req.config.CDI_devices, req.config.annotations);
  if (!names.length) return undefined;
  const dirs = sources.cdiSpecDirs?.() ?? [];
  return resolveCdiDevices(names, await loadCdiRegistry(dirs), dirs);
}
