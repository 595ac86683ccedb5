// CheckpointContainer and CheckpointPod write running containers' processes
// (CRIU images) and file changes into archives, the containers running on;
// a container created from such an archive is restored by StartContainer,
// conmon running `runc restore`.
import { readdir, rm } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { writeFileAtomic } from '../../store/store.ts';
import { deadlineExceeded, DomainError, failedPrecondition, internal, invalidArgument, notFound } from '../../errors.ts';
import { archiveName, checkOutputDir, PodCheckpointError, POD_MANIFEST, POD_MANIFEST_VERSION, type PodManifest } from '../../checkpoint/pod.ts';
import type { SandboxRecord } from '../../sandbox/record.ts';
import type { OciRuntime } from '../runtime.ts';
import type { ContainerRecord } from '../record.ts';
import { startConmon } from './launch.ts';
import { type ContainerState, containerName, nowNs, stateWord } from '../state.ts';
import { checkpointToArchive, criuInstalled, restoreDir, restoreLogTail, validateLocation } from '../checkpoint.ts';

/** StartContainer of a container made from a checkpoint: conmon runs `runc restore` from its CRIU images. */
export async function restoreContainer(s: ContainerState, r: ContainerRecord, runtime: OciRuntime): Promise<void> {
  const from = r.restore!;
  try {
    r.pid = await startConmon(s, r, runtime, Boolean(r.config.tty), join(restoreDir(r.bundle), 'checkpoint'));
  } catch (err) {
    await runtime.delete(r.id).catch(() => undefined);
    const criu = await restoreLogTail(r.bundle);
    throw internal(`cannot restore container ${r.id} from ${from.archive}: ${(err as Error).message}${criu ? ` (criu: ${criu})` : ''}`);
  }
  const now = nowNs();
  // The exit watcher may already have seen a restored process end.
  if (r.state === 'CONTAINER_CREATED') r.state = 'CONTAINER_RUNNING';
  r.startedAt = now;
  r.restoredAt = now;
  r.restoredFrom = from.archive;
  delete r.restore;
  await s.persist(r);
  await rm(restoreDir(r.bundle), { recursive: true, force: true });
  s.log.info({ id: r.id, name: containerName(r), pid: r.pid, archive: from.archive, originalId: from.originalId }, 'container restored from a checkpoint');
  s.events.publish('CONTAINER_STARTED_EVENT', r.id, r.sandboxId);
}

/** CheckpointContainer: the running container's processes and file changes into an archive; it keeps running. */
export async function checkpointContainer(s: ContainerState, id: string, location: string, timeoutSeconds: number, signal?: AbortSignal): Promise<void> {
  const r = s.get(id);
  await validateLocation(location);
  if (!(await criuInstalled())) throw failedPrecondition('checkpointing needs criu, which is not installed on s node (Debian: apt-get install criu)');
  await s.ops.with(r.id, async () => {
    if (r.state !== 'CONTAINER_RUNNING') throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; only a running container can be checkpointed`);
    const started = Date.now();
    await checkpointToArchive({
      record: r,
      runtime: s.runtimeFor(r.runtimeHandler),
      workRoot: join(s.deps.config.root, 'checkpoints'),
      upper: s.deps.upperDir(r.id),
      location,
      timeoutSeconds,
      signal,
      log: s.log,
    });
    s.log.info({ id: r.id, name: containerName(r), location, ms: Date.now() - started }, 'container checkpointed');
  });
}

/**
 * CheckpointPod: the selected running containers of a ready pod, paused
 * together so the archives are one consistent cut of the pod, each
 * checkpointed into dir, then all resumed (on failure too). The manifest
 * with the pod's config is written last; a failure removes what was written.
 */
export async function checkpointPod(s: ContainerState, sandboxId: string, containerIds: string[], dir: string, signal?: AbortSignal): Promise<void> {
  if (!sandboxId) throw invalidArgument('pod_sandbox_id is required');
  await checkOutputDir(dir).catch((err) => {
    throw err instanceof PodCheckpointError ? invalidArgument(err.message) : err;
  });
  const sandbox = s.deps.sandbox(sandboxId);
  if (!sandbox) throw notFound(`pod sandbox ${sandboxId} not found`);
  if (sandbox.state !== 'SANDBOX_READY') throw failedPrecondition(`pod sandbox ${sandbox.id} is not ready; only a running pod can be checkpointed`);
  if (sandbox.infraPid)
    throw failedPrecondition(
      `pod sandbox ${sandbox.id} shares one pid namespace among its containers; tscri checkpoints only pods whose containers have their own (CRIU must restore pid 1 of each namespace)`,
    );
  if (!containerIds.length) throw invalidArgument('container_ids is empty: name the running containers of the pod to checkpoint');
  const records: ContainerRecord[] = [];
  const names = new Set<string>();
  for (const id of containerIds) {
    const r = s.get(id);
    if (records.includes(r)) throw invalidArgument(`container ${r.id} is named twice in container_ids`);
    if (r.sandboxId !== sandbox.id) throw invalidArgument(`container ${r.id} belongs to pod ${r.sandboxId}, not to pod ${sandbox.id}`);
    const name = r.config.metadata?.name ?? '';
    if (names.has(name)) throw invalidArgument(`two containers of container_ids are named ${JSON.stringify(name)}; a restore matches containers by name`);
    names.add(name);
    records.push(r);
  }
  if (!(await criuInstalled())) throw failedPrecondition('checkpointing needs criu, which is not installed on s node (Debian: apt-get install criu)');
  const key = normalize(dir).replace(/\/+$/, '');
  if (s.podCheckpointDirs.has(key)) throw failedPrecondition(`another checkpoint is being written to ${dir}`);
  s.podCheckpointDirs.add(key);
  try {
    if ((await readdir(dir)).length) throw failedPrecondition(`output_path ${dir} is not empty; give an empty directory`);
    // Locks in id order, so two calls over overlapping containers never wait on each other crosswise.
    const sorted = [...records].sort((a, b) => a.id.localeCompare(b.id));
    const locked = sorted.reduceRight<() => Promise<void>>(
      (inner, r) => () => s.ops.with(r.id, inner),
      () => checkpointPodLocked(s, sandbox, records, dir, signal),
    );
    // The pod's stop and removal wait for the checkpoint, as for creates and starts.
    await s.pods.shared(sandbox.id, locked);
  } finally {
    s.podCheckpointDirs.delete(key);
  }
}

async function checkpointPodLocked(s: ContainerState, sandbox: SandboxRecord, records: ContainerRecord[], dir: string, signal?: AbortSignal): Promise<void> {
  for (const r of records) {
    if (r.state !== 'CONTAINER_RUNNING')
      throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; every container of a pod checkpoint must be running`);
  }
  const started = Date.now();
  const paused: ContainerRecord[] = [];
  let done = false;
  try {
    for (const r of records) {
      signal?.throwIfAborted();
      await s.runtimeFor(r.runtimeHandler).pause(r.id);
      paused.push(r);
    }
    for (const r of records) {
      await checkpointToArchive({
        record: r,
        runtime: s.runtimeFor(r.runtimeHandler),
        workRoot: join(s.deps.config.root, 'checkpoints'),
        upper: s.deps.upperDir(r.id),
        location: join(dir, archiveName(r.id)),
        timeoutSeconds: 0,
        signal,
        log: s.log,
        pausedByCaller: true,
      });
    }
    const manifest: PodManifest = {
      version: POD_MANIFEST_VERSION,
      sandboxId: sandbox.id,
      runtimeHandler: sandbox.runtimeHandler,
      checkpointedTime: new Date().toISOString(),
      podConfig: sandbox.config,
      containers: records.map((r) => ({ name: r.config.metadata?.name ?? '', id: r.id, archive: archiveName(r.id) })),
    };
    signal?.throwIfAborted();
    await writeFileAtomic(join(dir, POD_MANIFEST), JSON.stringify(manifest), 0o600);
    done = true;
  } catch (err) {
    if (signal?.aborted) throw deadlineExceeded(`checkpointing pod ${sandbox.id} did not finish before the client's deadline; nothing was kept`);
    throw err instanceof DomainError ? err : internal(`cannot checkpoint pod ${sandbox.id}: ${(err as Error).message}`);
  } finally {
    for (const r of paused) {
      await s
        .runtimeFor(r.runtimeHandler)
        .resume(r.id)
        .catch((err) => s.log.error({ id: r.id, err: String(err) }, 'cannot resume the container after checkpointing its pod'));
    }
    if (!done) {
      for (const entry of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, entry), { recursive: true, force: true });
    }
  }
  s.log.info({ id: sandbox.id, containers: records.map((r) => r.id), dir, ms: Date.now() - started }, 'pod checkpointed');
}
