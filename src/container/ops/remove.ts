// RemoveContainer: a container still running is killed first; then its
// runtime state, cgroup, conmon, rootfs, bundle, record and name go, and NRI
// plugins and event subscribers are told. Removing twice is a no-op.
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
    const pending = s.exitCleanups.get(r.id);
    s.exitCleanups.delete(r.id);
    // The runtime state of an exit is being removed already: that finishes after the answer.
    if (pending) finishAfterRemoval(s, r, pending);
    else await removeRuntimeState(s, r);
    const conmonPid = await readPidFile(bundleFiles(r.bundle).conmonPid);
    if (conmonPid && isConmon(conmonPid, r.id)) {
      try {
        process.kill(conmonPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (r.rootfsPrepared) await s.deps.removeRootfs(r.id, r.rootfs);
    // Renamed into the trash now and deleted after the answer: the name and id are free at once.
    await s.deps.deleteStateDir(r.bundle);
    await s.watcher.remove(r.id);
    await s.writes.with(r.id, () => s.store.delete(r.id));
    if (s.names.get(r.name) === r.id) s.names.delete(r.name);
    s.monitors.delete(r.id);
    s.launchErrors.delete(r.id);
    s.log.info({ id: r.id, name: containerName(r), podId: r.sandboxId }, 'container removed');
    s.events.publish('CONTAINER_DELETED_EVENT', r.id, r.sandboxId);
    await s.nri.removeContainer(r);
  });
}

/**
 * The exit's cleanup (`runc delete`, the cgroup) goes on after the answer;
 * should it have failed, it is done again. RemovePodSandbox waits for these
 * before it removes the pod's cgroup, and a crash meanwhile leaves runtime
 * state that the next start removes (recovery.ts).
 */
function finishAfterRemoval(s: ContainerState, r: ContainerRecord, pending: Promise<boolean>): void {
  const done = pending
    .then((cleaned) => (cleaned ? undefined : removeRuntimeState(s, r)))
    .catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot remove the runtime state or cgroup of a removed container'))
    .finally(() => s.afterRemoval.delete(r.id));
  s.afterRemoval.set(r.id, { sandboxId: r.sandboxId, done });
}
