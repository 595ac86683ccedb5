import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerEvents } from '../../../src/container/events.ts';

test('subscribers receive events in order', async () => {
  const events = new ContainerEvents();
  const sub = events.subscribe();
  events.publish('CONTAINER_CREATED_EVENT', 'c1', 'p1');
  events.publish('CONTAINER_STARTED_EVENT', 'c1', 'p1');
  assert.equal((await sub.next())!.type, 'CONTAINER_CREATED_EVENT');
  const next = sub.next();
  assert.equal((await next)!.type, 'CONTAINER_STARTED_EVENT');
  const pending = sub.next();
  events.publish('CONTAINER_STOPPED_EVENT', 'c1', 'p1');
  assert.equal((await pending)!.containerId, 'c1');
  events.unsubscribe(sub);
  assert.equal(await sub.next(), undefined);
  assert.equal(events.size, 0);
});

test('a subscriber that never reads is dropped instead of growing without bound', async () => {
  const events = new ContainerEvents();
  const slow = events.subscribe();
  const fast = events.subscribe();
  for (let i = 0; i < 5000; i++) {
    events.publish('CONTAINER_CREATED_EVENT', `c${i}`, 'p');
    await fast.next();
  }
  assert.equal(slow.overflowed, true);
  assert.equal(await slow.next(), undefined);
  assert.equal(fast.overflowed, false);
});
