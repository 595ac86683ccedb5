// Async locks for the NRI runtime: a mutex that delivers events to plugins
// one at a time, and a read-write lock that keeps container creation and a
// new plugin's synchronization apart (a waiting writer blocks new readers).

export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async with<R>(fn: () => Promise<R>): Promise<R> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private readonly waiting: { write: boolean; grant: () => void }[] = [];

  /** Resolves with the release function once no writer holds or waits. */
  read(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.readers++;
        resolve(
          once(() => {
            this.readers--;
            this.next();
          }),
        );
      };
      if (!this.writing && !this.waiting.some((w) => w.write)) grant();
      else this.waiting.push({ write: false, grant });
    });
  }

  /** Resolves with the release function once nobody else holds the lock. */
  write(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.writing = true;
        resolve(
          once(() => {
            this.writing = false;
            this.next();
          }),
        );
      };
      if (!this.writing && this.readers === 0 && this.waiting.length === 0) grant();
      else this.waiting.push({ write: true, grant });
    });
  }

  private next(): void {
    while (this.waiting.length > 0 && !this.writing) {
      const head = this.waiting[0]!;
      if (head.write) {
        if (this.readers > 0) return;
        this.waiting.shift();
        head.grant();
        return;
      }
      this.waiting.shift();
      head.grant();
    }
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
