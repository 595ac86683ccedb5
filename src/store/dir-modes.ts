// The modes of tscri's own directories. Everything that leads to a container's
// rootfs or bundle, a pod's files and /dev/shm, or a pinned namespace is
// reachable by root only: an image's setuid binaries, a pod's shared memory and
// its namespaces are nobody else's business on the host (containerd's
// CVE-2021-41103 was this). A new --root is made 0700 and a new --state 0711
// (searchable, not listable: it usually holds the CRI socket, which a group may
// be given); every directory tscri makes in them is 0700. Containers never need
// these paths: runc mounts what they use as root, and inside a container the
// mounts are reached through its own root.
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The directories tscri makes under --state. */
export const STATE_DIRS = ['containers', 'pods', 'ns', 'ns/net', 'ns/ipc', 'ns/uts', 'exits', 'sockets', 'runtime'];
/** The directories tscri makes under --root. */
export const ROOT_DIRS = ['blobs', 'checkpoints', 'containers', 'content', 'images', 'sandboxes', 'snapshots', 'volumes'];

/** Narrows an existing directory to mode (never widens it); a missing one is fine. */
async function narrow(dir: string, mode: number): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return;
  const current = info.mode & 0o7777;
  if ((current & ~mode) !== 0) await chmod(dir, current & mode);
}

/**
 * Makes the directories of --state 0700 and narrows those of --root and
 * --state that an earlier version left wider. --root and --state themselves
 * are the operator's (they may be given as existing directories) and are not
 * changed; what they may let others see is returned, to be warned about.
 */
export async function secureDirs(root: string, state: string): Promise<string[]> {
  for (const dir of STATE_DIRS) {
    await mkdir(join(state, dir), { recursive: true, mode: 0o700 });
    await narrow(join(state, dir), 0o700);
  }
  for (const dir of ROOT_DIRS) await narrow(join(root, dir), 0o700);
  const wide: string[] = [];
  for (const [dir, allowed] of [
    [root, 0o711],
    [state, 0o711],
  ] as const) {
    const mode = (await stat(dir)).mode & 0o777;
    if (mode & ~allowed) wide.push(`${dir} is mode ${mode.toString(8)}; 0700 (or 0711) keeps host users from listing it`);
  }
  return wide;
}
