// The state store: records of sandboxes, containers and images kept under
// --root, one JSON file per object, plus per-object locks.
//
// Why one file per object with atomic replace rather than a database: each
// write is independent (no global lock, concurrent RPCs on different objects
// never wait on each other), a crash mid-write leaves either the old or the
// new file and never a torn one, and an operator can read the state with cat.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { quote } from '../errors.ts';

export interface Identified {
  id: string;
}

export interface AtomicWriteOptions {
  /**
   * Sync the file before it replaces the old one, and the directory after
   * (default): a power loss then also leaves the old content or the new.
   * Without it the replace is still atomic for readers and for a crash of
   * the daemon: for files under --state, which a reboot removes anyway.
   */
  durable?: boolean;
  /**
   * Sync the directory after the rename (default with durable). A record
   * that replaces an older one needs no directory sync to read old-or-new
   * after a power loss: the name was already there.
   */
  syncDir?: boolean;
}

/** Writes a file so that readers and crashes see the old content or the new, never a mix. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600, options: AtomicWriteOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  const handle = await open(tmp, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // A failed write (a full disk, say) leaves nothing behind: the old file stays as it was.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (durable && (options.syncDir ?? true)) await syncDir(join(file, '..'));
}

/** For files under --state: atomic, not synced (see AtomicWriteOptions.durable). */
export const VOLATILE: AtomicWriteOptions = { durable: false };

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A collection of records of one kind, cached in memory and persisted one file each. */
export class RecordStore<T extends Identified> {
  readonly dir: string;
  private readonly records = new Map<string, T>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Reads every record from disk; leftovers of interrupted writes are
   * removed. With `check`, a record file that is not JSON, names another id
   * than its file, or fails check() is left on disk unread and reported to
   * onInvalid; without it such a file fails the load.
   */
  async load(options: { check?: (value: unknown) => void; onInvalid?: (file: string, err: Error) => void } = {}): Promise<T[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.records.clear();
    for (const name of await readdir(this.dir)) {
      const file = join(this.dir, name);
      if (name.includes('.tmp-')) {
        await rm(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const text = await readFile(file, 'utf8');
      if (!options.check) {
        const record = JSON.parse(text) as T;
        this.records.set(record.id, record);
        continue;
      }
      try {
        const record = JSON.parse(text) as T;
        options.check(record);
        if (`${record.id}.json` !== name) throw new Error(`it holds the record ${quote(String(record.id)).slice(0, 100)}`);
        this.records.set(record.id, record);
      } catch (err) {
        options.onInvalid?.(file, err as Error);
      }
    }
    return this.list();
  }

  get(id: string): T | undefined {
    return this.records.get(id);
  }

  list(): T[] {
    return [...this.records.values()];
  }

  /** Finds a record by its full id or by an unambiguous prefix. */
  find(idOrPrefix: string): T | undefined {
    const exact = this.records.get(idOrPrefix);
    if (exact || !idOrPrefix) return exact;
    let found: T | undefined;
    for (const [id, record] of this.records) {
      if (!id.startsWith(idOrPrefix)) continue;
      if (found) return undefined;
      found = record;
    }
    return found;
  }

  /**
   * Writes a record. `durable: false` skips the sync, for a step whose loss to
   * a power cut is harmless (what it records does not outlive a reboot): a
   * crash of the daemon still reads it, and a later durable put syncs it.
   */
  async put(record: T, options: { durable?: boolean } = {}): Promise<void> {
    assertSafeId(record.id);
    const isNew = !this.records.has(record.id);
    // Only a new record's name needs the directory synced (see AtomicWriteOptions.syncDir).
    await writeFileAtomic(join(this.dir, `${record.id}.json`), JSON.stringify(record, null, 1), 0o600, {
      durable: isNew || (options.durable ?? true),
      syncDir: isNew,
    });
    this.records.set(record.id, record);
  }

  /**
   * Changes a record that is in the store: the new content is written first
   * and the record changed in place only once it is on disk, so a failed write
   * (a full disk) leaves memory as the disk has it.
   */
  async update(record: T, changes: Partial<T>): Promise<void> {
    assertSafeId(record.id);
    await writeFileAtomic(join(this.dir, `${record.id}.json`), JSON.stringify({ ...record, ...changes }, null, 1), 0o600, {
      syncDir: !this.records.has(record.id),
    });
    Object.assign(record, changes);
    this.records.set(record.id, record);
  }

  async delete(id: string): Promise<void> {
    assertSafeId(id);
    await rm(join(this.dir, `${id}.json`), { force: true });
    this.records.delete(id);
  }
}

/** Ids become file names: only plain names are allowed, never a path (long enough for a sha512 digest). */
export function assertSafeId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/.test(id) || id.includes('..')) {
    throw new Error(`invalid record id ${quote(id)}`);
  }
}
