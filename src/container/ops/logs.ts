// ReopenContainerLog: conmon is told to reopen the container's log file
// (kubelet rotated it), and the call returns once the new file exists.
import { access } from 'node:fs/promises';
import { failedPrecondition, internal } from '../../errors.ts';
import { ctlMessage, CTL_REOPEN_LOG, writeCtl } from '../conmon.ts';
import { type ContainerState, stateWord } from '../state.ts';

const REOPEN_WAIT_MS = 5000;

/** Whether a file exists within a time limit (polled; conmon creates it asynchronously). */
async function appears(path: string, limitMs: number): Promise<boolean> {
  const until = Date.now() + limitMs;
  for (;;) {
    if (
      await access(path).then(
        () => true,
        () => false,
      )
    )
      return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Asks conmon to reopen the log file (kubelet rotated it). */
export async function reopenLog(s: ContainerState, id: string): Promise<void> {
  const r = s.get(id);
  if (r.state !== 'CONTAINER_RUNNING') throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; only a running container's log can be reopened`);
  await writeCtl(r.bundle, ctlMessage(CTL_REOPEN_LOG));
  // kubelet (and critest) look for the new file as soon as the call returns.
  if (r.logPath && !(await appears(r.logPath, REOPEN_WAIT_MS))) {
    throw internal(`conmon did not reopen the log file ${r.logPath} of container ${r.id} within ${REOPEN_WAIT_MS / 1000} s`);
  }
}
