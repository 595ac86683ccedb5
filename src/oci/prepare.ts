// Gathers what buildSpec needs beyond the request: the container's
// /etc/passwd and /etc/group (read inside its rootfs), requested devices,
// a Localhost seccomp profile, and image volumes mounted read-only.
import { readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SpecRequest } from '../container/service.ts';
import type { SnapshotStore } from '../snapshot/snapshots.ts';
import { mountReadonlyImage, unmount } from '../snapshot/rootfs.ts';
import { buildSpec, SpecError, type HostFacts } from './spec.ts';
import { readInRoot } from './rootfs-files.ts';
import { deviceAt } from './host.ts';
import { seccompChoice } from './security.ts';

export interface SpecSources {
  host: HostFacts;
  snapshots: SnapshotStore;
  resolveImage(ref: string): { id: string; chainIds: string[] } | undefined;
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
    if (!image) throw new SpecError(`image ${JSON.stringify(ref)} for the volume at ${m.container_path} is not present on this node; pull it first`);
    const target = join(imageVolumesDir(req.rootfs), String(n));
    await mountReadonlyImage(sources.snapshots, `${req.id}-vol${n}`, image.chainIds, target);
    mounts[ref] = target;
    n += 1;
  }
  return mounts;
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
    if (!device) throw new SpecError(`device ${JSON.stringify(d.host_path)} is not a character or block device on this node`);
    if (!d.container_path.startsWith('/')) throw new SpecError(`device container_path ${JSON.stringify(d.container_path)} must be absolute`);
    if (d.permissions && !/^[rwm]+$/.test(d.permissions)) throw new SpecError(`device permissions ${JSON.stringify(d.permissions)} must be made of r, w and m`);
    return { ...device, containerPath: d.container_path, permissions: d.permissions || 'rwm' };
  });
}

async function localhostSeccomp(req: SpecRequest): Promise<object | undefined> {
  const sc = req.config.linux?.security_context;
  const choice = seccompChoice(sc?.seccomp, sc?.seccomp_profile_path);
  if (choice.kind !== 'localhost') return undefined;
  if (!choice.ref?.startsWith('/')) throw new SpecError(`seccomp profile ${JSON.stringify(choice.ref)} must be an absolute path on the node`);
  try {
    return JSON.parse(await readFile(choice.ref, 'utf8'));
  } catch (err) {
    throw new SpecError(`cannot read seccomp profile ${choice.ref}: ${(err as Error).message}`);
  }
}

export async function makeSpec(req: SpecRequest, sources: SpecSources): Promise<Record<string, any>> {
  const [passwd, group] = await Promise.all([readInRoot(req.rootfs, '/etc/passwd'), readInRoot(req.rootfs, '/etc/group')]);
  return buildSpec({
    containerId: req.id,
    config: req.config,
    sandbox: req.sandbox,
    image: { config: req.image.config?.config ?? {}, name: req.image.repo_tags[0] ?? req.image.id },
    rootfs: req.rootfs,
    cgroupsPath: req.cgroupsPath,
    etcFiles: { passwd, group },
    host: sources.host,
    imageMounts: await mountImageVolumes(req, sources),
    seccompLocalhost: await localhostSeccomp(req),
    devices: requestedDevices(req),
    targetPidNamespace: req.targetPidNamespace,
  });
}
