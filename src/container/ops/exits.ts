// What happens when a container's process ends: the exit (from conmon's exit
// file, or settled without one when conmon is gone) is written to the record,
// waiters are woken, the runtime state and cgroup are removed in the
// background, NRI plugins and event subscribers are told.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { internal, resourceExhausted } from '../../errors.ts';
import { diskFullCode } from '../../store/disk-full.ts';
import { removeCgroup } from '../../cgroups/cgroups.ts';
import { bundleFiles } from '../conmon.ts';
import { readExitFile, type ExitInfo } from '../exits.ts';
import { exitReason, type ContainerRecord } from '../record.ts';
import { type ContainerState, containerName, nowNs, stateWord } from '../state.ts';

export async function recordExit(s: ContainerState, exit: ExitInfo): Promise<void> {
  const r = s.store.get(exit.id);
  if (!r || r.state === 'CONTAINER_EXITED') return;
  const oom = await access(bundleFiles(r.bundle).oom).then(
    () => true,
    () => false,
  );
  const finishedAt = Math.round(exit.finishedAtMs * 1e6);
  const applied = await commitExit(s, r, {
    state: 'CONTAINER_EXITED',
    exitCode: exit.exitCode,
    finishedAt,
    reason: exitReason(exit.exitCode, oom),
    pid: 0,
  });
  if (!applied) return;
  cleanUpAfterExit(s, r);
  s.wakeExitWaiters(r.id);
  void s.nri.stopContainer(r);
  s.log.info({ id: r.id, name: containerName(r), exitCode: r.exitCode, reason: r.reason }, 'container exited');
  await s.starting.get(r.id);
  s.events.publish('CONTAINER_STOPPED_EVENT', r.id, r.sandboxId);
}

/**
 * `runc delete` of a container that ended, then what runc leaves of its
 * cgroup (the unified copy on hybrid hosts). Fails only when the runtime does.
 */
export async function removeRuntimeState(s: ContainerState, r: ContainerRecord): Promise<void> {
  await s.runtimeFor(r.runtimeHandler).delete(r.id);
  await removeCgroup(r.cgroupsPath).catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot remove the container cgroup'));
}

/** Starts removing the runtime state and cgroup of an exited container (see exitCleanups). */
function cleanUpAfterExit(s: ContainerState, r: ContainerRecord): void {
  if (s.exitCleanups.has(r.id)) return;
  // Not while `runc start` may still be running for a process that exited at once.
  const started = (s.starting.get(r.id) ?? Promise.resolve()).catch(() => undefined);
  const done = started
    .then(() => removeRuntimeState(s, r))
    .then(
      () => true,
      (err) => {
        s.log.debug({ id: r.id, err: String(err) }, 'runtime state of an exited container not removed yet; RemoveContainer will');
        return false;
      },
    );
  s.exitCleanups.set(r.id, done);
}

export async function settleWithoutExitFile(s: ContainerState, r: ContainerRecord, exitCode: number, message: string): Promise<void> {
  const exit = await readExitFile(join(s.exitDir, r.id), r.id);
  if (exit) return recordExit(s, exit);
  if (r.state === 'CONTAINER_EXITED') return;
  if (!(await commitExit(s, r, { state: 'CONTAINER_EXITED', exitCode, finishedAt: nowNs(), reason: 'Error', message, pid: 0 }))) return;
  cleanUpAfterExit(s, r);
  s.wakeExitWaiters(r.id);
  void s.nri.stopContainer(r);
  s.events.publish('CONTAINER_STOPPED_EVENT', r.id, r.sandboxId);
}

/**
 * Records an exit: memory changes only once the record is on disk. When the
 * write fails (a full disk) both still say what they said, the exit stays
 * in conmon's exit file to be applied again, and the StopContainer waiting
 * for it fails with the reason.
 */
async function commitExit(s: ContainerState, r: ContainerRecord, changes: Partial<ContainerRecord>): Promise<boolean> {
  try {
    const applied = await s.writes.with(r.id, async () => {
      // Another report of the same exit got here first.
      if (r.state === 'CONTAINER_EXITED') return false;
      // A process can end before `runc start` returns: the start then sets startedAt before this
      // exit is applied, or while it is written (and persists the record after it). Either way the
      // container never finishes before it started.
      if (changes.finishedAt !== undefined && r.startedAt && changes.finishedAt < r.startedAt) changes = { ...changes, finishedAt: r.startedAt };
      if (s.store.get(r.id) === r) await s.store.update(r, changes);
      else Object.assign(r, changes);
      if (r.startedAt && r.finishedAt < r.startedAt) r.finishedAt = r.startedAt;
      return true;
    });
    s.exitSaveErrors.delete(r.id);
    return applied;
  } catch (err) {
    const code = diskFullCode(err);
    const failure = code
      ? resourceExhausted(
          `cannot record the exit of container ${r.id}: ${code}, the disk of ${s.deps.config.root} is full; it still reads ${stateWord(r.state)} and the exit is recorded once there is room`,
          err,
        )
      : internal(`cannot record the exit of container ${r.id}: ${(err as Error).message}`, err);
    s.exitSaveErrors.set(r.id, failure);
    s.log.error({ id: r.id, err: String(err) }, 'cannot save container exit');
    s.wakeExitWaiters(r.id);
    throw failure;
  }
}

/** After a stop: an exit that happened but could not be recorded fails the call. */
export function assertExitRecorded(s: ContainerState, r: ContainerRecord): void {
  const failure = s.exitSaveErrors.get(r.id);
  if (r.state === 'CONTAINER_EXITED' || !failure) return;
  s.exitSaveErrors.delete(r.id);
  throw failure;
}
