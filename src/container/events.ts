// Container lifecycle events for GetContainerEvents (kubelet's evented PLEG).
// Each subscriber has its own bounded queue: a slow subscriber is dropped
// (its stream ends and kubelet re-subscribes and relists) rather than ever
// holding up the daemon or growing memory.

export type ContainerEventType = 'CONTAINER_CREATED_EVENT' | 'CONTAINER_STARTED_EVENT' | 'CONTAINER_STOPPED_EVENT' | 'CONTAINER_DELETED_EVENT';

export interface LifecycleEvent {
  type: ContainerEventType;
  containerId: string;
  sandboxId: string;
  /** Nanoseconds since the epoch. */
  createdAt: number;
}

const QUEUE_LIMIT = 1000;

export class Subscription {
  private readonly queue: LifecycleEvent[] = [];
  private wake: (() => void) | undefined;
  overflowed = false;
  closed = false;

  push(event: LifecycleEvent): void {
    if (this.closed) return;
    if (this.queue.length >= QUEUE_LIMIT) {
      this.overflowed = true;
      this.close();
      return;
    }
    this.queue.push(event);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** The next event, or undefined once closed and drained. */
  async next(): Promise<LifecycleEvent | undefined> {
    while (!this.queue.length && !this.closed) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    return this.overflowed ? undefined : this.queue.shift();
  }
}

export class ContainerEvents {
  private readonly subscribers = new Set<Subscription>();

  publish(type: ContainerEventType, containerId: string, sandboxId: string): void {
    const event = { type, containerId, sandboxId, createdAt: Date.now() * 1e6 };
    for (const subscriber of this.subscribers) subscriber.push(event);
  }

  subscribe(): Subscription {
    const subscription = new Subscription();
    this.subscribers.add(subscription);
    return subscription;
  }

  unsubscribe(subscription: Subscription): void {
    subscription.close();
    this.subscribers.delete(subscription);
  }

  get size(): number {
    return this.subscribers.size;
  }
}
