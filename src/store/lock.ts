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
