// The rootfs-diff.tar of a checkpoint archive: what a container changed in
// its root filesystem, read from its overlay upper directory and written as
// an OCI layer tar. Overlay's own markers are turned back into OCI ones: a
// 0/0 character device (a deleted file) becomes an empty `.wh.NAME` file,
// and a directory with trusted.overlay.opaque=y gets a `.wh..wh..opq` entry,
// so the tar can be unpacked by applyLayer onto a new upper directory
// (applyRootfsDiff), with the same refusal of entries that leave it.
// Mount points the runtime created in the upper directory (bind mount
// targets such as /etc/hosts, /dev, /proc) are left out: the restored
// container gets its own.
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack, type Header, type Pack } from 'tar-stream';

/** A header as tar-stream's pack takes it: fields left out get defaults. */
type Headers = Partial<Header> & { name: string };
import { lgetxattr } from '../snapshot/syscalls.ts';
import { applyLayer } from '../snapshot/layer.ts';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Paths (absolute in the container, like "/etc/hosts") never put in the diff. */
export function excludedPaths(spec: { mounts?: Array<{ destination?: string }> } | undefined): Set<string> {
  const paths = new Set(['/dev', '/dev/shm', '/proc', '/run', '/sys']);
  for (const m of spec?.mounts ?? []) if (m.destination) paths.add(normalizeDestination(m.destination));
  return paths;
}

function normalizeDestination(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return `/${parts.join('/')}`;
}

/** Whether a stat is an overlay whiteout: a character device numbered 0/0. */
function isWhiteout(info: Stats): boolean {
  return info.isCharacterDevice() && info.rdev === 0;
}

function isOpaque(path: string): boolean {
  try {
    return lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y';
  } catch {
    // Filesystems without trusted xattrs cannot hold opaque directories.
    return false;
  }
}

function baseHeader(name: string, info: Stats): Headers {
  return { name, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid, mtime: info.mtime };
}

/** Adds one entry to the pack and waits until it is written. */
function add(p: Pack, header: Headers): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    // An empty file needs an empty body; other types take none.
    if (header.type === 'file') p.entry(header as Header, Buffer.alloc(0), cb);
    else p.entry(header as Header, cb);
  });
}

/** Streams a regular file's contents into the pack. */
async function addFile(p: Pack, header: Headers, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sink = p.entry(header as Header, (err) => (err ? reject(err) : resolve()));
    pipeline(createReadStream(path), sink).catch(reject);
  });
}

/** Walks the upper directory depth first, in name order, adding every entry to the pack. */
class DiffWriter {
  private readonly links = new Map<string, string>();
  private readonly p: Pack;
  private readonly root: string;
  private readonly exclude: Set<string>;

  constructor(p: Pack, root: string, exclude: Set<string>) {
    this.p = p;
    this.root = root;
    this.exclude = exclude;
  }

  async dir(rel: string): Promise<void> {
    const path = rel ? join(this.root, rel) : this.root;
    if (rel && isOpaque(path)) await add(this.p, { name: `${rel}/${OPAQUE}`, type: 'file', mode: 0o644, size: 0 });
    for (const name of (await readdir(path)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (this.exclude.has(`/${childRel}`)) continue;
      await this.entry(childRel, join(path, name));
    }
  }

  private async entry(rel: string, path: string): Promise<void> {
    const info = await lstat(path);
    const header = baseHeader(rel, info);
    if (isWhiteout(info)) {
      const slash = rel.lastIndexOf('/');
      const name = `${rel.slice(0, slash + 1)}${WHITEOUT_PREFIX}${rel.slice(slash + 1)}`;
      await add(this.p, { ...header, name, type: 'file', mode: 0o644, size: 0 });
      return;
    }
    if (info.isDirectory()) {
      await add(this.p, { ...header, name: `${rel}/`, type: 'directory' });
      await this.dir(rel);
      return;
    }
    if (info.isFile() && info.nlink > 1) {
      const key = `${info.dev}:${info.ino}`;
      const first = this.links.get(key);
      if (first) return add(this.p, { ...header, type: 'link', linkname: first, size: 0 });
      this.links.set(key, rel);
    }
    if (info.isFile()) return addFile(this.p, { ...header, type: 'file', size: info.size }, path);
    if (info.isSymbolicLink()) return add(this.p, { ...header, type: 'symlink', linkname: await readlink(path) });
    if (info.isFIFO()) return add(this.p, { ...header, type: 'fifo' });
    if (info.isCharacterDevice() || info.isBlockDevice()) {
      const type = info.isCharacterDevice() ? 'character-device' : 'block-device';
      return add(this.p, { ...header, type, devmajor: major(info.rdev), devminor: minor(info.rdev) });
    }
    // Sockets cannot be stored in a tar; a restored process recreates its own.
  }
}

/** glibc's major()/minor() of a dev_t held in a JS number. */
function major(dev: number): number {
  const big = BigInt(dev);
  return Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
}

function minor(dev: number): number {
  const big = BigInt(dev);
  return Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
}

/** Writes the diff of upper (an overlay upper directory) as an uncompressed tar to file. */
export async function writeRootfsDiff(upper: string, file: string, exclude: Set<string>): Promise<void> {
  const p = pack();
  const done = pipeline(p, createWriteStream(file, { mode: 0o600 }));
  try {
    await new DiffWriter(p, upper, exclude).dir('');
    p.finalize();
  } catch (err) {
    p.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  await done;
}

/** Unpacks a rootfs-diff.tar into a new container's empty upper directory. */
export async function applyRootfsDiff(file: string, upper: string): Promise<void> {
  await applyLayer(createReadStream(file), 'application/vnd.oci.image.layer.v1.tar', upper);
}
