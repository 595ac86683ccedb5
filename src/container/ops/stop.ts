// StopContainer: the container's stop signal, SIGKILL after the timeout,
// then (when conmon is gone) the runtime asked directly; it returns once the
// exit is recorded, or fails when it could not be. Stopping twice is a no-op.
import { join } from 'node:path';
import { internal } from '../../errors.ts';
import { readExitFile } from '../exits.ts';
import { stopSignal, type ContainerRecord } from '../record.ts';
import { assertExitRecorded, recordExit, settleWithoutExitFile } from './exits.ts';
import { type ContainerState, containerName } from '../state.ts';

/** How long stop waits for conmon's exit file after SIGKILL before asking runc directly. */
const KILL_GRACE_MS = 2_000;

/** Stops a container: its stop signal, then SIGKILL after timeoutSeconds. Idempotent. */
export async function stopContainer(s: ContainerState, id: string, timeoutSeconds: number): Promise<void> {
  const r = s.find(id);
  if (!r) return;
  await s.ops.with(r.id, async () => {
    await stopLocked(s, r, timeoutSeconds);
    assertExitRecorded(s, r);
  });
  if (r.state === 'CONTAINER_EXITED') await s.nri.stopContainer(r);
}

export async function stopLocked(s: ContainerState, r: ContainerRecord, timeoutSeconds: number): Promise<void> {
  if (r.state === 'CONTAINER_EXITED') return;
  // An exit seen earlier but not yet recorded (the disk was full) is recorded now.
  const pending = s.exitSaveErrors.has(r.id) ? await readExitFile(join(s.exitDir, r.id), r.id) : undefined;
  if (pending) return recordExit(s, pending);
  // A container waiting to be restored, or whose runtime process could not be made, has no process to stop.
  if (r.state === 'CONTAINER_CREATED' && !r.pid) {
    s.launchErrors.delete(r.id);
    return settleWithoutExitFile(s, r, 0, r.restore ? 'the container was stopped before it was restored' : 'the container was stopped before it started');
  }
  const runtime = s.runtimeFor(r.runtimeHandler);
  if (timeoutSeconds > 0 && r.state === 'CONTAINER_RUNNING') {
    const signal = stopSignal(r.config.stop_signal, r.imageStopSignal);
    await runtime.kill(r.id, signal);
    if (await s.waitExit(r, timeoutSeconds * 1000)) return;
    s.log.info({ id: r.id, name: containerName(r), signal, timeoutSeconds }, 'container ignored its stop signal; killing it');
  }
  await runtime.kill(r.id, 'SIGKILL', true);
  if (await s.waitExit(r, KILL_GRACE_MS)) return;
  // conmon is gone (killed, or the host lost it): ask the runtime directly.
  for (let i = 0; i < 50; i++) {
    const state = await runtime.state(r.id);
    if (!state || state.status === 'stopped') {
      await settleWithoutExitFile(s, r, 137, 'the container was killed; its monitor was not running');
      return;
    }
    if (await s.waitExit(r, 200)) return;
  }
  throw internal(`container ${r.id} did not stop after SIGKILL`);
}
