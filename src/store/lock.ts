// Per-key async locks so that RPCs on one object are serialised while RPCs on
// different objects run concurrently.

export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs fn while holding the lock for key; callers for the same key queue in order. */
  async with<R>(key: string, fn: () => Promise<R>): Promise<R> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  isHeld(key: string): boolean {
    return this.tails.has(key);
  }
}

interface Waiter {
  exclusive: boolean;
  wake: () => void;
}

interface SharedState {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

/**
 * Per-key shared/exclusive locks: any number of shared holders at once, or
 * one exclusive holder. Waiters are served in order, so a waiting exclusive
 * caller is not starved by shared ones arriving after it.
 */
export class SharedKeyedLock {
  private readonly states = new Map<string, SharedState>();

  shared<R>(key: string, fn: () => Promise<R>): Promise<R> {
    return this.run(key, false, fn);
  }

  exclusive<R>(key: string, fn: () => Promise<R>): Promise<R> {
    return this.run(key, true, fn);
  }

  private async run<R>(key: string, exclusive: boolean, fn: () => Promise<R>): Promise<R> {
    await this.acquire(key, exclusive);
    try {
      return await fn();
    } finally {
      this.release(key, exclusive);
    }
  }

  private acquire(key: string, exclusive: boolean): Promise<void> {
    let s = this.states.get(key);
    if (!s) {
      s = { readers: 0, writer: false, queue: [] };
      this.states.set(key, s);
    }
    const free = !s.writer && !s.queue.length && (!exclusive || s.readers === 0);
    if (free) {
      if (exclusive) s.writer = true;
      else s.readers++;
      return Promise.resolve();
    }
    const state = s;
    return new Promise((wake) => state.queue.push({ exclusive, wake }));
  }

  private release(key: string, exclusive: boolean): void {
    const s = this.states.get(key)!;
    if (exclusive) s.writer = false;
    else s.readers--;
    while (s.queue.length && !s.writer) {
      const next = s.queue[0]!;
      if (next.exclusive && s.readers > 0) break;
      s.queue.shift();
      if (next.exclusive) s.writer = true;
      else s.readers++;
      next.wake();
    }
    if (!s.readers && !s.writer && !s.queue.length) this.states.delete(key);
  }
}
