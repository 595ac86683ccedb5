// The pod's namespaces pinned as files (bind mounts of /proc/<pid>/ns/*) so
// they outlive every process: created in one unshare call that also sets the
// hostname, brings up loopback and applies the pod's sysctls inside them.
import { statfsSync } from 'node:fs';
import { mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.ts';
import { unmount } from './files.ts';

const NSFS_MAGIC = 0x6e736673;

export interface PinRequest {
  net: boolean;
  ipc: boolean;
  uts: boolean;
  /** Set inside the new UTS namespace. */
  hostname?: string;
  /** [/proc/sys path, value] applied inside the new namespaces. */
  sysctls: Array<[string, string]>;
}

export interface PinnedNamespaces {
  network?: string;
  ipc?: string;
  uts?: string;
}

/** The file a namespace of a pod is pinned at. */
export function namespacePath(stateDir: string, kind: 'net' | 'ipc' | 'uts', id: string): string {
  return join(stateDir, 'ns', kind, id);
}

/**
 * Every namespace file a pod may have pinned, whatever its record says: a
 * crash while the namespaces were being pinned leaves files (and mounts) that
 * no record names yet.
 */
export function podNamespaceFiles(stateDir: string, id: string, recorded: PinnedNamespaces = {}): Array<{ kind: 'net' | 'ipc' | 'uts'; files: string[] }> {
  const kinds = [
    ['net', recorded.network],
    ['ipc', recorded.ipc],
    ['uts', recorded.uts],
  ] as const;
  return kinds.map(([kind, file]) => ({ kind, files: [...new Set([namespacePath(stateDir, kind, id), ...(file ? [file] : [])])] }));
}

/** The pod ids that have a file under <state>/ns/{net,ipc,uts}. */
export async function pinnedPodIds(stateDir: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const kind of ['net', 'ipc', 'uts']) {
    for (const name of await readdir(join(stateDir, 'ns', kind)).catch(() => [] as string[])) if (/^[0-9a-f]{64}$/.test(name)) ids.add(name);
  }
  return [...ids];
}

/** Unpins every namespace file of a pod, recorded or not; with keepNet the network namespace stays. */
export async function unpinPodNamespaces(stateDir: string, id: string, recorded: PinnedNamespaces = {}, keepNet = false): Promise<void> {
  const errors: string[] = [];
  for (const { kind, files } of podNamespaceFiles(stateDir, id, recorded)) {
    if (kind === 'net' && keepNet) continue;
    for (const file of files) {
      try {
        await unmount(file);
        await rm(file, { force: true });
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  }
  if (errors.length) throw new Error(`cannot unpin the namespaces of pod sandbox ${id}: ${errors.join('; ')}`);
}

// Runs inside the new namespaces: $1 hostname (may be empty), $2 "lo" to
// bring loopback up, then pairs of /proc/sys path and value.
const SETUP_SCRIPT = [
  'h=$1; lo=$2; shift 2',
  'if [ -n "$h" ]; then printf %s "$h" > /proc/sys/kernel/hostname || exit 1; fi',
  'if [ -n "$lo" ]; then ip link set lo up || exit 1; fi',
  'while [ $# -gt 1 ]; do printf %s "$2" > "$1" || { echo "cannot set sysctl $1 to $2" >&2; exit 1; }; shift 2; done',
].join('\n');

export async function pinNamespaces(stateDir: string, id: string, req: PinRequest): Promise<PinnedNamespaces> {
  const pinned: PinnedNamespaces = {};
  const args: string[] = [];
  const kinds: Array<['net' | 'ipc' | 'uts', keyof PinnedNamespaces, boolean]> = [
    ['net', 'network', req.net],
    ['ipc', 'ipc', req.ipc],
    ['uts', 'uts', req.uts],
  ];
  for (const [kind, key, wanted] of kinds) {
    if (!wanted) continue;
    const file = namespacePath(stateDir, kind, id);
    await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
    await writeFile(file, '', { mode: 0o444 });
    pinned[key] = file;
    args.push(`--${kind}=${file}`);
  }
  if (!args.length) return pinned;
  try {
    await run('unshare', [...args, '--', '/bin/sh', '-c', SETUP_SCRIPT, 'sh', req.uts ? (req.hostname ?? '') : '', req.net ? 'lo' : '', ...req.sysctls.flat()]);
  } catch (err) {
    await unpinNamespaces(pinned);
    throw err;
  }
  return pinned;
}

/** Unmounts and deletes pinned namespace files; missing ones are fine. */
export async function unpinNamespaces(pinned: PinnedNamespaces): Promise<void> {
  for (const file of [pinned.network, pinned.ipc, pinned.uts]) {
    if (!file) continue;
    await unmount(file);
    await rm(file, { force: true });
  }
}

/** Whether a file is a live pinned namespace (an nsfs bind mount). */
/** isNamespaceFile without the thread pool (a statfs of an nsfs file reads no disk). */
export function isNamespaceFileSync(file: string): boolean {
  try {
    return statfsSync(file).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

export async function isNamespaceFile(file: string): Promise<boolean> {
  try {
    return (await statfs(file)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}
