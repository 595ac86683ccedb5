// Container root filesystems: an overlay mount of the image's snapshots with
// a writable upper directory (on disk, by default under the snapshot root,
// so a container's changes survive a daemon restart), and read-only overlays
// of an image for image volumes. Mounts are made with mount(2), lower dirs
// named by absolute path; when those options would pass the kernel's one
// page, mount(8) runs in the snapshot root so they can be named relatively.
import { existsSync } from 'node:fs';
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from '../sys/spawn.ts';
import { hasOwnDevice, mount, MS_RDONLY, unmountAll } from '../sys/mount.ts';
import type { SnapshotStore } from './snapshots.ts';
import { assertSafeId } from '../store/store.ts';
import { quote } from '../errors.ts';

/** The kernel copies overlay mount options into one page, NUL included. */
const MAX_MOUNT_DATA = 4095;

/** Escapes a path as /proc/self/mountinfo writes it (space, tab, newline, backslash as octal). */
function mountinfoEscape(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** How many mounts sit at target (read from /proc/self/mountinfo). */
async function mountCount(target: string): Promise<number> {
  const canonical = await realpath(target).catch(() => resolve(target));
  const escaped = mountinfoEscape(canonical);
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').filter((line) => line.split(' ')[4] === escaped).length;
}

/** Whether target is a mount point. */
export async function isMounted(target: string): Promise<boolean> {
  return (await mountCount(target)) > 0;
}

/** The lowerdir list for chainIds (bottom first), relative to the snapshot root: overlay lists the top layer first. */
function lowerDirs(store: SnapshotStore, chainIds: string[]): string[] {
  return [...chainIds].reverse().map((c) => store.relativeDir(c));
}

function lowerOption(lowers: string[]): string {
  return `lowerdir=${lowers.join(':')}`;
}

/** Absolute paths in mount options: ',' and ':' separate options and layers, so they cannot appear. */
function optionPath(path: string): string {
  if (/[,:\\]/.test(path))
    throw new Error(
      `cannot mount an overlay using ${quote(path)}: paths with ',', ':' or '\\' are not possible in overlay options; choose another root directory`,
    );
  return path;
}

/** Overlay's inode index must be off: lower dirs are shared by many mounts with different upper dirs. */
function extraOptions(): string[] {
  return existsSync('/sys/module/overlay/parameters/index') ? ['index=off'] : [];
}

/**
 * Mounts an overlay; lowers are relative to the snapshot root. With absolute
 * paths the options fit one page for all but the tallest images: then
 * mount(2) does it; otherwise mount(8), run in the snapshot root, takes the
 * relative names.
 */
async function mountOverlay(store: SnapshotStore, lowers: string[], rest: string[], target: string, layers: number): Promise<void> {
  const absolute = [lowerOption(lowers.map((l) => optionPath(resolve(store.root, l)))), ...rest].join(',');
  if (absolute.length <= MAX_MOUNT_DATA) {
    const flags = rest.includes('ro') ? MS_RDONLY : 0;
    try {
      mount('overlay', target, 'overlay', flags, rest.includes('ro') ? absolute.replace(/(^|,)ro(?=,|$)/, '') : absolute);
    } catch (err) {
      throw new Error(`cannot mount the root filesystem at ${target}: ${(err as Error).message}`);
    }
    return;
  }
  const data = [lowerOption(lowers), ...rest].join(',');
  if (data.length > MAX_MOUNT_DATA) {
    throw new Error(
      `cannot mount the root filesystem at ${target}: its ${layers} layers make overlay options of ${data.length} bytes, more than the kernel's ${MAX_MOUNT_DATA}`,
    );
  }
  // Relative lowerdir paths are resolved from mount's working directory.
  const result = await run('mount', ['-t', 'overlay', 'overlay', '-o', data, target], { cwd: store.root });
  if (result.code !== 0)
    throw new Error(`cannot mount the root filesystem at ${target}: ${result.stderr.trim() || `mount exited with ${result.code ?? result.signal}`}`);
}

/** Where a container's upper and work dirs live: under workParent, or by default under the snapshot root. */
function workBase(store: SnapshotStore, containerId: string, workParent?: string): string {
  return workParent ?? join(store.containersDir, containerId);
}

/** The writable directory of a container's rootfs. */
export function upperDir(store: SnapshotStore, containerId: string, workParent?: string): string {
  return join(workBase(store, containerId, workParent), 'upper');
}

/** The directories of a container's root filesystem. */
export interface RootfsDirs {
  /** The overlay mount point. */
  rootfs: string;
  /** The container's writes (overlay upperdir). */
  upper: string;
  /** Overlay's scratch directory (workdir). */
  work: string;
}

/**
 * Mounts a container's rootfs at target: the snapshots of chainIds (bottom
 * first) under an upper dir made in workParent (default: the snapshot
 * root's containers/<id>), and leases the snapshots to containerId.
 * populate, when given, fills a new upper dir before the mount (a restored
 * container's changes).
 * Images without layers get an empty lower dir. Calling it again for a
 * mounted target does nothing.
 */
export async function prepareRootfs(
  store: SnapshotStore,
  containerId: string,
  chainIds: string[],
  target: string,
  workParent?: string,
  populate?: (upper: string) => Promise<void>,
): Promise<RootfsDirs> {
  assertSafeId(containerId);
  const base = workBase(store, containerId, workParent);
  const upper = join(base, 'upper');
  const work = join(base, 'work');
  const lowers = chainIds.length ? lowerDirs(store, chainIds) : [store.emptyDir];
  // A container's changes survive a failed mount (say, after a reboot): only dirs made now are removed.
  const fresh = !existsSync(upper);
  await store.retain(containerId, chainIds);
  try {
    // Side by side; all settle before a failure is handled, so the cleanup below races none of them.
    const made = await Promise.allSettled([
      mkdir(upper, { recursive: true, mode: 0o755 }),
      mkdir(work, { recursive: true, mode: 0o700 }),
      mkdir(target, { recursive: true, mode: 0o755 }),
    ]);
    const failed = made.find((m) => m.status === 'rejected');
    if (failed) throw failed.reason;
    // Filled before the mount: overlay must not see its upper dir change under it.
    if (fresh && populate) await populate(upper);
    const dirs = { rootfs: target, upper, work };
    // Overlay and tmpfs mounts have a device of their own: no need to read the mount table.
    if (hasOwnDevice(target)) return dirs;
    await mountOverlay(
      store,
      lowers,
      [`upperdir=${optionPath(resolve(upper))}`, `workdir=${optionPath(resolve(work))}`, ...extraOptions()],
      target,
      chainIds.length,
    );
    return dirs;
  } catch (err) {
    if (fresh) {
      await removeWorkDirs(store, base, workParent);
      await store.release(containerId);
    }
    throw err;
  }
}

/**
 * Mounts an image read-only at target (image volumes), leasing its
 * snapshots to ownerId. Idempotent like prepareRootfs.
 */
export async function mountReadonlyImage(store: SnapshotStore, ownerId: string, chainIds: string[], target: string): Promise<void> {
  // Without an upper dir overlay needs two lower dirs: the empty dir makes up the count.
  const lowers = [...lowerDirs(store, chainIds), store.emptyDir];
  await store.retain(ownerId, chainIds);
  try {
    await mkdir(target, { recursive: true });
    if (hasOwnDevice(target)) return;
    if (!chainIds.length) {
      // Overlay refuses one dir twice; an image without layers is an empty read-only tmpfs.
      try {
        mount('tmpfs', target, 'tmpfs', MS_RDONLY, 'mode=0755,size=4k');
      } catch (err) {
        throw new Error(`cannot mount an empty image at ${target}: ${(err as Error).message}`);
      }
      return;
    }
    await mountOverlay(store, lowers, ['ro', ...extraOptions()], target, chainIds.length);
  } catch (err) {
    await store.release(ownerId);
    throw err;
  }
}

/** Unmounts everything mounted at target, detaching lazily if busy. Idempotent. */
export async function unmount(target: string): Promise<void> {
  unmountAll(target);
}

async function removeWorkDirs(store: SnapshotStore, base: string, workParent?: string): Promise<void> {
  if (workParent) {
    // The caller's directory is theirs: only what prepareRootfs made goes.
    await store.deleteDir(join(base, 'upper'));
    await store.deleteDir(join(base, 'work'));
  } else {
    await store.deleteDir(base);
  }
}

/**
 * Unmounts a container's rootfs, deletes its upper and work dirs (moved into
 * the store's trash now, deleted after the call) and ends its lease on the
 * snapshots. Idempotent; the target dir itself stays.
 */
export async function removeRootfs(store: SnapshotStore, containerId: string, target: string, workParent?: string): Promise<void> {
  assertSafeId(containerId);
  await unmount(target);
  await removeWorkDirs(store, workBase(store, containerId, workParent), workParent);
  await store.release(containerId);
}
