// RemoveContainer: a container still running is killed first; its record and
// name go, NRI plugins and event subscribers are told, and the call answers.
// What it leaves on disk and in the runtime (runtime state, cgroup, conmon,
// rootfs, bundle) is removed right after, as containerd's garbage collector
// does: a crash meanwhile leaves a bundle without a record, which the next
// start removes (recovery.ts). Removing twice is a no-op.
import { bundleFiles, readPidFile } from '../conmon.ts';
import type { ContainerRecord } from '../record.ts';
import { removeRuntimeState } from './exits.ts';
import { stopLocked } from './stop.ts';
import { type ContainerState, containerName, isConmon } from '../state.ts';

export async function removeContainer(s: ContainerState, id: string): Promise<void> {
  const r = s.find(id);
  if (!r) return;
  await s.ops.with(r.id, async () => {
    if (!s.store.get(r.id)) return;
    if (r.state !== 'CONTAINER_EXITED') await stopLocked(s, r, 0);
    await s.writes.with(r.id, () => s.store.delete(r.id));
    if (s.names.get(r.name) === r.id) s.names.delete(r.name);
    s.monitors.delete(r.id);
    s.launchErrors.delete(r.id);
    const exitCleanup = s.exitCleanups.get(r.id);
    s.exitCleanups.delete(r.id);
    removeAfterAnswer(s, r, exitCleanup);
    s.log.info({ id: r.id, name: containerName(r), podId: r.sandboxId }, 'container removed');
    s.events.publish('CONTAINER_DELETED_EVENT', r.id, r.sandboxId);
    await s.nri.removeContainer(r);
  });
}

/**
 * Starts removing what a removed container left. RemovePodSandbox waits for
 * it before it removes the pod's cgroup, and a stopping daemon before it exits.
 */
function removeAfterAnswer(s: ContainerState, r: ContainerRecord, exitCleanup: Promise<boolean> | undefined): void {
  const done = removeLeftovers(s, r, exitCleanup)
    .catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot remove all that a removed container left; the next start does'))
    .finally(() => s.afterRemoval.delete(r.id));
  s.afterRemoval.set(r.id, { sandboxId: r.sandboxId, done });
}

async function removeLeftovers(s: ContainerState, r: ContainerRecord, exitCleanup: Promise<boolean> | undefined): Promise<void> {
  // The exit's cleanup may be under way; should it have failed, it is done again.
  const cleaned = exitCleanup ? await exitCleanup : false;
  // Each step runs whatever the one before did: a failed `runc delete` must not keep the rootfs mounted.
  const steps: Array<() => Promise<unknown>> = [
    async () => cleaned || (await removeRuntimeState(s, r)),
    () => killConmon(r),
    async () => r.rootfsPrepared && (await s.deps.removeRootfs(r.id, r.rootfs)),
    () => s.deps.deleteStateDir(r.bundle),
    () => s.watcher.remove(r.id),
  ];
  const failures: string[] = [];
  for (const step of steps) await step().catch((err) => failures.push(String(err)));
  if (failures.length) throw new Error(failures.join('; '));
}

async function killConmon(r: ContainerRecord): Promise<void> {
  const conmonPid = await readPidFile(bundleFiles(r.bundle).conmonPid);
  if (!conmonPid || !isConmon(conmonPid, r.id)) return;
  try {
    process.kill(conmonPid, 'SIGKILL');
  } catch {
    // already gone
  }
}
