// The runtime's side of a new container (conmon running `runc create`) is
// made after CreateContainer has answered, as containerd creates its task
// only at StartContainer: the create returns, and its event goes out, without
// waiting the tens of milliseconds runc takes. The launch holds the
// container's lock, queued before any later call on the container, so a
// start, stop, update or removal always finds it done (or failed).
import { DomainError, internal } from '../../errors.ts';
import { requestErrorOf } from '../runtime-errors.ts';
import type { ContainerRecord } from '../record.ts';
import type { ContainerState } from '../state.ts';
import { metrics } from '../../metrics.ts';
import type { OciRuntime } from '../runtime.ts';
import { conmonCreateArgs, firstSyncMessage, spawnConmon } from '../conmon.ts';

const CONMON_TIMEOUT_MS = 240_000;

/**
 * Queues the launch of a created container; called while its create holds
 * the container's lock, so nothing else on the container runs in between.
 */
export function launchSoon(s: ContainerState, r: ContainerRecord): void {
  void s.ops.with(r.id, async () => {
    if (!needsLaunch(s, r)) return;
    try {
      await launch(s, r);
    } catch (err) {
      // StartContainer reports it: that is where containerd reports a task that could not be created.
      s.launchErrors.set(r.id, err as Error);
      s.log.warn({ id: r.id, err: (err as Error).message }, 'the runtime could not create the container');
    }
  });
}

/**
 * StartContainer's first step, under the container's lock: the runtime's
 * container, made now when the queued launch failed (its error is reported,
 * once) or never ran (tscri restarted in between).
 */
export async function ensureLaunched(s: ContainerState, r: ContainerRecord): Promise<void> {
  const failed = s.launchErrors.get(r.id);
  if (failed) {
    s.launchErrors.delete(r.id);
    throw asCreateError(r, failed);
  }
  if (!needsLaunch(s, r)) return;
  try {
    await launch(s, r);
  } catch (err) {
    throw asCreateError(r, err as Error);
  }
}

/** Whether a created container has no runtime process yet (a restored one gets it from `runc restore`). */
function needsLaunch(s: ContainerState, r: ContainerRecord): boolean {
  return s.store.get(r.id) === r && r.state === 'CONTAINER_CREATED' && !r.pid && !r.restore;
}

async function launch(s: ContainerState, r: ContainerRecord): Promise<void> {
  const runtime = s.runtimeFor(r.runtimeHandler);
  try {
    r.pid = await startConmon(s, r, runtime, Boolean(r.config.tty));
  } catch (err) {
    // What runc made before it failed goes, so that a later start can try again.
    await runtime.delete(r.id).catch(() => undefined);
    throw err;
  }
}

function asCreateError(r: ContainerRecord, err: Error): DomainError {
  if (err instanceof DomainError) return err;
  return requestErrorOf(err.message) ?? internal(`cannot create container ${r.id} in the runtime: ${err.message}`);
}

/** Starts conmon, which runs `runc create` (or `runc restore`), and returns the container's pid. */
export async function startConmon(s: ContainerState, r: ContainerRecord, runtime: OciRuntime, terminal: boolean, restorePath?: string): Promise<number> {
  const args = conmonCreateArgs({
    conmonPath: s.deps.config.conmon.path,
    runtimePath: runtime.path,
    runtimeArgs: runtime.globalArgs().filter((a) => a !== '--systemd-cgroup'),
    id: r.id,
    name: r.name,
    bundle: r.bundle,
    exitDir: s.exitDir,
    socketDir: s.socketDir,
    logPath: r.logPath,
    terminal,
    stdin: r.config.stdin,
    stdinOnce: r.config.stdin_once,
    systemdCgroup: runtime.systemdCgroup,
    logLevel: s.deps.config.log_level,
    restorePath,
  });
  return metrics.time(metrics.runtimeDuration, { command: restorePath ? 'restore' : 'create' }, async () => {
    const conmon = spawnConmon(s.deps.config.conmon.path, args, r.bundle, false);
    try {
      const message = await firstSyncMessage(conmon, conmon.sync, CONMON_TIMEOUT_MS);
      if (message.data <= 0) throw new Error(`the runtime could not create the container: ${message.message ?? 'no reason given'}`);
      return message.data;
    } finally {
      (conmon.child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
    }
  });
}
