// Exit detection: conmon writes <exit dir>/<container id> holding the exit
// code when a container's process ends. One fs.watch (inotify) on that
// directory wakes the daemon for every exit, so no container is polled;
// scan() reads exits that happened while tscri was not running.
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface ExitInfo {
  id: string;
  exitCode: number;
  /** When conmon wrote the file: the container's finish time, in ms since the epoch. */
  finishedAtMs: number;
}

/** Reads an exit file; undefined while it is absent or still being written. */
export async function readExitFile(file: string, id: string): Promise<ExitInfo | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const code = Number.parseInt(text.trim(), 10);
    if (!Number.isFinite(code)) return undefined;
    return { id, exitCode: code, finishedAtMs: info.mtimeMs };
  } catch {
    return undefined;
  }
}

export class ExitWatcher {
  readonly dir: string;
  private watcher: FSWatcher | undefined;
  private readonly onExit: (exit: ExitInfo) => void;

  constructor(dir: string, onExit: (exit: ExitInfo) => void) {
    this.dir = dir;
    this.onExit = onExit;
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
      if (name && isContainerId(name)) void this.check(name);
    });
    this.watcher.on('error', () => undefined);
  }

  /** Reports every exit file present now. */
  async scan(): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (isContainerId(name)) await this.check(name);
    }
  }

  private async check(id: string): Promise<void> {
    const exit = await readExitFile(join(this.dir, id), id);
    if (exit) this.onExit(exit);
  }

  /** Forgets a container's exit once its record is gone. */
  async remove(id: string): Promise<void> {
    if (isContainerId(id)) await rm(join(this.dir, id), { force: true });
  }

  close(): void {
    this.watcher?.close();
  }
}

// conmon writes through a temporary file (<id>.XXXXXX) and renames it.
function isContainerId(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name);
}
