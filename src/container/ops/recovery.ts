// A daemon starting again finds its containers as it left them, or learns
// what happened meanwhile: records are loaded, exits that came while it was
// down are recorded, the runtime is asked about the rest, creates a crash
// interrupted are undone; and a running container whose conmon vanished is
// settled (checked every few seconds and on ContainerStatus).
import { access, mkdir, readdir } from 'node:fs/promises';
import { hasOwnDevice } from '../../sys/mount.ts';
import { join } from 'node:path';
import { bundleFiles, readPidFile } from '../conmon.ts';
import type { ContainerRecord } from '../record.ts';
import { settleWithoutExitFile } from './exits.ts';
import { type ContainerState, isConmon, nowNs } from '../state.ts';

/** How often running containers' monitors are checked for having vanished. */
const MONITOR_CHECK_MS = 5_000;

/** Loads records, starts watching exits and settles containers that ended while tscri was down. */
export async function loadContainers(s: ContainerState): Promise<void> {
  await mkdir(s.stateDir, { recursive: true, mode: 0o700 });
  await mkdir(s.socketDir, { recursive: true, mode: 0o700 });
  const records = await s.store.load();
  for (const r of records) s.names.set(r.name, r.id);
  await s.watcher.start();
  await s.watcher.scan();
  for (const r of records) {
    if (r.state === 'CONTAINER_EXITED') continue;
    await reconcile(s, r).catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot read container state at start'));
  }
  await removeOrphans(s, new Set(records.map((r) => r.id)));
  s.monitorTimer = setInterval(() => void checkMonitors(s), MONITOR_CHECK_MS);
  s.monitorTimer.unref();
}

/**
 * A running container whose conmon is gone (killed, say) has nobody to
 * record its exit: once the runtime says it stopped, it is settled as
 * exited (code unknown). Checked on ContainerStatus and every few seconds.
 */
export async function checkMonitor(s: ContainerState, r: ContainerRecord): Promise<void> {
  if (r.state !== 'CONTAINER_RUNNING' || s.ops.isHeld(r.id)) return;
  let pid = s.monitors.get(r.id);
  if (pid === undefined) {
    pid = await readPidFile(bundleFiles(r.bundle).conmonPid);
    if (pid) s.monitors.set(r.id, pid);
  }
  if (pid && isConmon(pid, r.id)) return;
  await s.ops.with(r.id, async () => {
    if (r.state !== 'CONTAINER_RUNNING' || !s.store.get(r.id)) return;
    const state = await s.runtimeFor(r.runtimeHandler).state(r.id);
    if (state && state.status !== 'stopped') return;
    s.log.warn({ id: r.id, conmonPid: pid }, 'the monitor (conmon) of a running container is gone and the container has stopped');
    await settleWithoutExitFile(s, r, 255, 'the container stopped while its monitor (conmon) was not running; its exit code is unknown');
  });
}

async function checkMonitors(s: ContainerState): Promise<void> {
  for (const r of s.store.list()) {
    await checkMonitor(s, r).catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot check the monitor of a container'));
    // Each check reads /proc synchronously: calls that arrive meanwhile are
    // served between two containers, not after all of them.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * A create interrupted by a crash leaves a bundle (and maybe a mounted
 * rootfs, a conmon and a runtime container) but no record: undo it all.
 */
async function removeOrphans(s: ContainerState, known: Set<string>): Promise<void> {
  const names = await readdir(s.stateDir).catch(() => [] as string[]);
  for (const id of names.filter((n) => /^[a-f0-9]{64}$/.test(n) && !known.has(n))) {
    const bundle = join(s.stateDir, id);
    s.log.warn({ id }, 'removing a container whose creation was interrupted');
    const conmonPid = await readPidFile(bundleFiles(bundle).conmonPid);
    if (conmonPid && isConmon(conmonPid, id)) {
      try {
        process.kill(conmonPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const handler of Object.keys(s.deps.config.runtime.handlers)) {
      await s
        .runtimeFor(handler)
        .delete(id)
        .catch(() => undefined);
    }
    await s.deps.removeRootfs(id, join(bundle, 'rootfs')).catch((err) => s.log.warn({ id, err: String(err) }, 'cannot remove rootfs'));
    await s.deps.deleteStateDir(bundle).catch(() => undefined);
    await s.watcher.remove(id).catch(() => undefined);
  }
  await removeRuntimeOrphans(s, known);
}

/**
 * Runtime state of containers without a record: a crash came after a
 * RemoveContainer answered but before the exit's `runc delete` ended.
 * Only handlers whose state directory is under tscri's --state are looked
 * at: a root shared with another tool (a configured `root`) is not ours.
 */
async function removeRuntimeOrphans(s: ContainerState, known: Set<string>): Promise<void> {
  for (const handler of Object.keys(s.deps.config.runtime.handlers)) {
    const runtime = s.runtimeFor(handler);
    if (!runtime.root.startsWith(`${s.deps.config.state}/`)) continue;
    const ids = await readdir(runtime.root).catch(() => [] as string[]);
    for (const id of ids.filter((n) => /^[a-f0-9]{64}$/.test(n) && !known.has(n))) {
      s.log.warn({ id, handler }, 'removing the runtime state of a removed container');
      await runtime.delete(id).catch((err) => s.log.warn({ id, err: String(err) }, 'cannot remove runtime state'));
    }
  }
}

/** At start: an exit file was handled by scan(); otherwise ask the runtime whether the process lives. */
async function reconcile(s: ContainerState, r: ContainerRecord): Promise<void> {
  if (r.state === 'CONTAINER_EXITED') return;
  if (r.restore && r.state === 'CONTAINER_CREATED') return;
  const runtime = s.runtimeFor(r.runtimeHandler);
  const state = await runtime.state(r.id);
  // A create answered just before tscri stopped may not have reached the runtime: StartContainer makes it then.
  if (!state && r.state === 'CONTAINER_CREATED' && !r.pid && (await launchable(r))) return;
  if (!state) return settleWithoutExitFile(s, r, 255, 'the container is gone from the runtime (was the host restarted?)');
  if (r.state === 'CONTAINER_CREATED' && !r.pid) r.pid = state.pid;
  const conmonPid = await readPidFile(bundleFiles(r.bundle).conmonPid);
  const conmonAlive = conmonPid !== undefined && isConmon(conmonPid, r.id);
  if (state.status === 'stopped' && !conmonAlive) return settleWithoutExitFile(s, r, 255, 'the container stopped while its monitor was not running');
  if (state.status === 'running' && r.state === 'CONTAINER_CREATED') {
    r.state = 'CONTAINER_RUNNING';
    r.startedAt = r.startedAt || nowNs();
    await s.persist(r);
  }
}

/** Its bundle and mounted rootfs are still there (a host restart takes both). */
async function launchable(r: ContainerRecord): Promise<boolean> {
  const config = await access(bundleFiles(r.bundle).config).then(
    () => true,
    () => false,
  );
  return config && hasOwnDevice(r.rootfs);
}
