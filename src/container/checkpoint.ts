// Checkpointing a running container to an archive, and reading an archive
// for a restore. The container service owns the locking and the records;
// this file owns the steps: the runtime and CRIU (`runc checkpoint
// --leave-running`), the metadata and rootfs diff, the archive, and on the
// restore side the archive's image, configuration and files.
import { constants as fsConstants } from 'node:fs';
import { access, lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import type { Logger } from '../log.ts';
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import { deadlineExceeded, internal, invalidArgument, notFound, quote } from '../errors.ts';
import {
  ArchiveError,
  CHECKPOINT_DIR,
  CONFIG_DUMP,
  DUMP_LOG,
  ROOTFS_DIFF,
  SPEC_DUMP,
  STATS_DUMP,
  extractForRestore,
  readArchiveMetadata,
  writeArchive,
} from '../checkpoint/archive.ts';
import { imageCandidates, makeConfigDump, restoredConfig, RestoreError, validConfigDump, type ConfigDump } from '../checkpoint/metadata.ts';
import { excludedPaths, writeRootfsDiff } from '../checkpoint/rootfs-diff.ts';
import type { OciRuntime } from './runtime.ts';
import { bundleFiles } from './conmon.ts';
import type { ContainerRecord } from './record.ts';
import type { ResolvedImage } from '../oci/request.ts';

/** Whether the criu binary runc calls is on PATH. */
export async function criuInstalled(path = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'): Promise<boolean> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    if (
      await access(join(dir, 'criu'), fsConstants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

/** Checks the CheckpointContainer location: an absolute path of a file to be, in an existing directory. */
export async function validateLocation(location: string): Promise<void> {
  if (!location) throw invalidArgument('location is required: the absolute path of the checkpoint archive to write');
  if (location.includes('\0')) throw invalidArgument('location contains a NUL byte');
  if (!isAbsolute(location)) throw invalidArgument(`location ${quote(location)} must be an absolute path`);
  const parent = await stat(dirname(location)).catch(() => undefined);
  if (!parent?.isDirectory()) throw invalidArgument(`the directory of location ${quote(location)} does not exist`);
  const existing = await lstat(location).catch(() => undefined);
  if (existing && !existing.isFile()) throw invalidArgument(`location ${quote(location)} exists and is not a regular file`);
}

export interface CheckpointJob {
  record: ContainerRecord;
  runtime: OciRuntime;
  /** Where the temporary directory of the checkpoint is made. */
  workRoot: string;
  /** The container's overlay upper directory. */
  upper: string;
  location: string;
  timeoutSeconds: number;
  /** The call's own signal (client deadline or cancel). */
  signal?: AbortSignal;
  log: Logger;
  /** The caller has paused the container (with others, for one consistent cut) and resumes it. */
  pausedByCaller?: boolean;
}

/** An AbortSignal for the checkpoint: the call's signal or the request's timeout, whichever comes first. */
function checkpointSignal(timeoutSeconds: number, signal?: AbortSignal): AbortSignal {
  const signals = signal ? [signal] : [];
  if (timeoutSeconds > 0) {
    const timeout = AbortSignal.timeout(timeoutSeconds * 1000);
    signals.push(timeout);
  }
  return signals.length ? AbortSignal.any(signals) : new AbortController().signal;
}

function stepError(err: unknown, job: CheckpointJob, signal: AbortSignal): Error {
  const id = job.record.id;
  if (signal.aborted) {
    const reason = signal.reason as Error | undefined;
    if (reason?.name === 'TimeoutError')
      return deadlineExceeded(`checkpointing container ${id} did not finish within ${job.timeoutSeconds} s; runc and criu were killed`);
    if (reason?.name === 'DeadlineExceeded')
      return deadlineExceeded(`checkpointing container ${id} did not finish before the client's deadline; runc and criu were killed`);
    return reason instanceof Error ? reason : new Error(String(reason));
  }
  return internal(`cannot checkpoint container ${id}: ${(err as Error).message}`);
}

/**
 * Checkpoints a running container into an archive at job.location. The
 * container is frozen while CRIU dumps it and its root filesystem changes
 * are read, so memory and files match; it runs on afterwards.
 */
export async function checkpointToArchive(job: CheckpointJob): Promise<void> {
  const { record: r, runtime } = job;
  const signal = checkpointSignal(job.timeoutSeconds, job.signal);
  await mkdir(job.workRoot, { recursive: true, mode: 0o700 });
  const work = join(job.workRoot, randomBytes(8).toString('hex'));
  await mkdir(work, { mode: 0o700 });
  let paused = false;
  try {
    const spec = JSON.parse(await readFile(bundleFiles(r.bundle).config, 'utf8'));
    if (!job.pausedByCaller) {
      await runtime.pause(r.id);
      paused = true;
    }
    await runtime.checkpoint(r.id, join(work, CHECKPOINT_DIR), work, signal);
    signal.throwIfAborted();
    await writeFile(join(work, SPEC_DUMP), JSON.stringify(spec), { mode: 0o600 });
    const dump = makeConfigDump({ ...r, imageName: r.imageRef, restored: Boolean(r.restoredAt) });
    await writeFile(join(work, CONFIG_DUMP), JSON.stringify(dump), { mode: 0o600 });
    await writeRootfsDiff(job.upper, join(work, ROOTFS_DIFF), excludedPaths(spec));
    signal.throwIfAborted();
    await writeArchive(work, [CHECKPOINT_DIR, CONFIG_DUMP, SPEC_DUMP, ROOTFS_DIFF, STATS_DUMP, DUMP_LOG], job.location);
  } catch (err) {
    const log = await readFile(join(work, DUMP_LOG), 'utf8').catch(() => '');
    if (log) job.log.warn({ id: r.id, criuLog: log.slice(-4000) }, 'criu dump log of the failed checkpoint');
    throw stepError(err, job, signal);
  } finally {
    if (paused) await runtime.resume(r.id).catch((err) => job.log.error({ id: r.id, err: String(err) }, 'cannot resume the container after checkpointing'));
    await rm(work, { recursive: true, force: true });
  }
}

// ---- restore ----

/** What CreateContainer needs to make a container from a checkpoint archive. */
export interface RestorePlan {
  archive: string;
  dump: ConfigDump;
  config: ContainerConfig__Output;
  image: ResolvedImage;
  /** The image reference the container is recorded with. */
  imageRef: string;
}

/** Whether an image field names a checkpoint archive: an absolute path of an existing regular file. */
export async function isArchivePath(ref: string): Promise<boolean> {
  if (!isAbsolute(ref)) return false;
  return (await stat(ref).catch(() => undefined))?.isFile() ?? false;
}

/** Reads the archive's metadata and finds its image; the request's own settings are merged in. */
export async function planRestore(
  archive: string,
  request: ContainerConfig__Output,
  resolveImage: (ref: string) => Promise<ResolvedImage | undefined>,
): Promise<RestorePlan> {
  try {
    const { config } = await readArchiveMetadata(archive);
    const dump = validConfigDump(config);
    const candidates = imageCandidates(dump);
    for (const ref of candidates) {
      const image = await resolveImage(ref);
      if (image) return { archive, dump, image, imageRef: ref, config: restoredConfig(dump.containerConfig, request, ref) };
    }
    throw notFound(`the image of the checkpointed container, ${candidates.join(' or ')}, is not present on this node; pull it first`);
  } catch (err) {
    if (err instanceof ArchiveError || err instanceof RestoreError) throw invalidArgument(err.message);
    throw err;
  }
}

/** The directory in a restored container's bundle holding the archive's files until the restore. */
export function restoreDir(bundle: string): string {
  return join(bundle, 'restore');
}

/** Extracts the CRIU images and the rootfs diff; returns the diff's path when the archive has one. */
export async function unpackForRestore(archive: string, bundle: string): Promise<string | undefined> {
  const dir = restoreDir(bundle);
  await mkdir(dir, { mode: 0o700 });
  try {
    const { hasRootfsDiff } = await extractForRestore(archive, dir);
    const images = await stat(join(dir, CHECKPOINT_DIR)).catch(() => undefined);
    if (!images?.isDirectory()) throw new ArchiveError(`${archive} has no ${CHECKPOINT_DIR}/ directory of CRIU images`);
    return hasRootfsDiff ? join(dir, ROOTFS_DIFF) : undefined;
  } catch (err) {
    if (err instanceof ArchiveError) throw invalidArgument(err.message);
    throw err;
  }
}

/** The OCI annotation runc reads the path of a CRIU configuration file from. */
export const CRIU_CONFIG_ANNOTATION = 'org.criu.config';
/** The CRIU configuration file in a restored container's bundle. */
export const CRIU_RESTORE_CONFIG = 'criu-restore.conf';

/** CRIU configuration for a restore: the dumped processes' cgroup becomes the container's own (cgroupFs, a path below each hierarchy). */
export function criuRestoreConfig(cgroupFs: string): string {
  if (!cgroupFs.startsWith('/') || /[\s\0]/.test(cgroupFs))
    throw internal(`cgroup path ${JSON.stringify(cgroupFs)} cannot be written to a CRIU configuration file`);
  return `cgroup-root ${cgroupFs}\n`;
}

/** CRIU's restore log in the bundle (conmon runs runc restore with the bundle as work path). */
export async function restoreLogTail(bundle: string): Promise<string> {
  const text = await readFile(join(bundle, 'restore.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => /Error|error/.test(l))
    .slice(-5)
    .join('; ');
}
