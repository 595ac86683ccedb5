// Checkpoint archives: the uncompressed tar CheckpointContainer writes and a
// restore reads, in the layout checkpointctl and CRI-O use:
//
//   checkpoint/       CRIU's image files
//   config.dump       container metadata (see metadata.ts)
//   spec.dump         the container's OCI runtime spec (config.json)
//   rootfs-diff.tar   the container's root filesystem changes (rootfs-diff.ts)
//   stats-dump        CRIU's dump statistics, dump.log its log (when present)
//
// Writing goes to a temporary file next to the location, renamed into place
// once complete, so a failure never leaves a partial archive. Reading trusts
// nothing: entries that climb out (`..`), links, devices and anything but
// plain files and directories under checkpoint/ are refused.
import { closeSync, constants as fsConstants, createReadStream, createWriteStream, lstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { lstat, open, readdir, readlink, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack, type Header, type Pack } from 'tar-stream';
import { quote } from '../errors.ts';

/** A header as tar-stream's pack takes it: fields left out get defaults. */
type Headers = Partial<Header> & { name: string };

export const CHECKPOINT_DIR = 'checkpoint';
export const CONFIG_DUMP = 'config.dump';
export const SPEC_DUMP = 'spec.dump';
export const ROOTFS_DIFF = 'rootfs-diff.tar';
export const STATS_DUMP = 'stats-dump';
export const DUMP_LOG = 'dump.log';

/** JSON files larger than this are not metadata. */
const MAX_JSON = 16 * 1024 * 1024;

/** An archive that cannot be used: unreadable, incomplete or unsafe. */
export class ArchiveError extends Error {}

// ---- writing ----

function addVoid(p: Pack, header: Headers): Promise<void> {
  return new Promise((resolve, reject) => {
    p.entry(header as Header, (err) => (err ? reject(err) : resolve()));
  });
}

function addFile(p: Pack, header: Headers, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = p.entry(header as Header, (err) => (err ? reject(err) : resolve()));
    pipeline(createReadStream(path), sink).catch(reject);
  });
}

/** Adds path (a file, directory or symlink) under the archive name `name`, directories with their contents. */
async function addTree(p: Pack, path: string, name: string): Promise<void> {
  const info = await lstat(path);
  const header: Headers = { name, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid, mtime: info.mtime };
  if (info.isDirectory()) {
    await addVoid(p, { ...header, name: `${name}/`, type: 'directory' });
    for (const child of (await readdir(path)).sort()) await addTree(p, join(path, child), `${name}/${child}`);
  } else if (info.isFile()) {
    await addFile(p, { ...header, type: 'file', size: info.size }, path);
  } else if (info.isSymbolicLink()) {
    await addVoid(p, { ...header, type: 'symlink', linkname: await readlink(path) });
  }
}

/**
 * Packs the named entries of dir (those that exist) into an uncompressed tar
 * at location, readable by its owner only (it holds every memory page of the
 * checkpointed processes). The file appears complete or not at all.
 */
export async function writeArchive(dir: string, names: string[], location: string): Promise<void> {
  const tmp = join(dirname(location), `.${basename(location)}.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const p = pack();
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    const done = pipeline(p, out);
    try {
      for (const name of names) {
        if (
          await lstat(join(dir, name)).then(
            () => true,
            () => false,
          )
        )
          await addTree(p, join(dir, name), name);
      }
      p.finalize();
    } catch (err) {
      p.destroy(err as Error);
      await done.catch(() => undefined);
      throw err;
    }
    await done;
    const handle = await open(tmp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, location);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

// ---- reading ----

/** The entry's path as components; throws for names that climb out or carry a NUL. */
export function archivePath(name: string): string[] {
  if (name.includes('\0')) throw new ArchiveError(`archive entry ${quote(name)} has a NUL in its name`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new ArchiveError(`archive entry ${quote(name)} leaves the archive`);
  return parts;
}

type EntryHandler = (header: Headers, parts: string[], body: Readable) => Promise<void>;

/** Runs handle for each entry of the tar at path, one after the other. */
async function eachEntry(path: string, handle: EntryHandler): Promise<void> {
  const tar = extract();
  tar.on('entry', (header, stream, next) => {
    const body = stream as unknown as Readable;
    body.on('error', () => undefined);
    let parts: string[];
    try {
      parts = archivePath(header.name);
    } catch (err) {
      body.resume();
      return next(err as Error);
    }
    handle(header, parts, body).then(
      () => {
        body.resume();
        next();
      },
      (err) => {
        body.resume();
        next(err);
      },
    );
  });
  try {
    await pipeline(createReadStream(path), tar);
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`cannot read the checkpoint archive ${quote(path)}: ${(err as Error).message}`);
  }
}

async function readJson(body: Readable, name: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON) throw new ArchiveError(`${name} in the checkpoint archive is larger than ${MAX_JSON} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new ArchiveError(`${name} in the checkpoint archive is not JSON: ${(err as Error).message}`);
  }
}

/** config.dump and spec.dump of an archive, parsed; fails when either is missing. */
export async function readArchiveMetadata(path: string): Promise<{ config: unknown; spec: unknown }> {
  const found: Record<string, unknown> = {};
  await eachEntry(path, async (header, parts, body) => {
    const name = parts.join('/');
    if ((name === CONFIG_DUMP || name === SPEC_DUMP) && header.type === 'file') found[name] = await readJson(body, name);
  });
  for (const name of [CONFIG_DUMP, SPEC_DUMP]) {
    if (found[name] === undefined) throw new ArchiveError(`${quote(path)} is not a checkpoint archive: it has no ${name}`);
  }
  return { config: found[CONFIG_DUMP], spec: found[SPEC_DUMP] };
}

/** Creates the parent directories of parts under root, refusing anything that is not a real directory. */
function makeParents(root: string, parts: string[]): string {
  let path = root;
  for (const part of parts.slice(0, -1)) {
    path = join(path, part);
    const info = lstatSync(path, { throwIfNoEntry: false });
    if (!info) mkdirSync(path, { mode: 0o700 });
    else if (!info.isDirectory()) throw new ArchiveError(`archive entry ${parts.join('/')} is below ${part}, which is not a directory`);
  }
  return join(path, parts[parts.length - 1]!);
}

async function writeNewFile(path: string, body: Readable): Promise<void> {
  // O_EXCL|O_NOFOLLOW: never writes through an existing file or a symlink.
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Extracts what a restore needs into dest (an empty directory): the
 * checkpoint/ directory and rootfs-diff.tar. Entries other than plain files
 * and directories there, and any entry that climbs out, fail the extraction.
 */
export async function extractForRestore(path: string, dest: string): Promise<{ hasRootfsDiff: boolean }> {
  let hasRootfsDiff = false;
  await eachEntry(path, async (header, parts, body) => {
    const inCheckpoint = parts[0] === CHECKPOINT_DIR;
    const isDiff = parts.length === 1 && parts[0] === ROOTFS_DIFF;
    if (!inCheckpoint && !isDiff) return;
    if (header.type === 'directory') {
      if (isDiff) throw new ArchiveError(`archive entry ${header.name} must be a file`);
      const dir = makeParents(dest, parts);
      const info = lstatSync(dir, { throwIfNoEntry: false });
      if (!info) mkdirSync(dir, { mode: 0o700 });
      else if (!info.isDirectory()) throw new ArchiveError(`archive entry ${header.name} replaces a file with a directory`);
      return;
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') {
      throw new ArchiveError(`archive entry ${header.name} is a ${header.type}; only files and directories may be restored`);
    }
    await writeNewFile(makeParents(dest, parts), body);
    if (isDiff) hasRootfsDiff = true;
  });
  return { hasRootfsDiff };
}
