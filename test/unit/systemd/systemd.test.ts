// The sd_notify address format and what the systemd variables become.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inheritedSocket, monotonicUsec, Notifier, notifyAddress, takeNotifySocket } from '../../../src/systemd/systemd.ts';
import { notifySocket } from '../../helpers/systemd.ts';

test('NOTIFY_SOCKET paths end in NUL, abstract names start with one; others are refused', () => {
  const path = notifyAddress('/run/systemd/notify');
  assert.equal(path.readUInt16LE(0), 1);
  assert.equal(path.subarray(2).toString(), '/run/systemd/notify\0');
  const abstract = notifyAddress('@sd');
  assert.deepEqual([...abstract.subarray(2)], [0, 0x73, 0x64]);
  assert.throws(() => notifyAddress('relative'), /neither an absolute path nor an abstract socket/);
  assert.throws(() => notifyAddress(`/${'x'.repeat(107)}`), /longer than a unix socket address/);
  assert.doesNotThrow(() => notifyAddress(`/${'x'.repeat(106)}`));
});

test('the variables are taken out of the environment, so child processes never see them', () => {
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/x', LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'cri', OTHER: 'kept' };
  assert.equal(takeNotifySocket(env), '/x');
  assert.equal(inheritedSocket(env, 2), undefined, 'LISTEN_PID names another process');
  assert.deepEqual(env, { OTHER: 'kept' });
  assert.equal(inheritedSocket({ LISTEN_PID: '7', LISTEN_FDS: '0' }, 7), undefined);
  assert.throws(() => inheritedSocket({ LISTEN_PID: '7', LISTEN_FDS: '-1' }, 7), /not a count/);
});

test('each notification is one datagram of KEY=value lines; a missing socket is reported once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-notify-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const receiver = notifySocket(join(dir, 'n.sock'));
  t.after(() => receiver.close());
  const notifier = new Notifier(receiver.address);
  notifier.ready('serving\nwith a newline');
  const before = monotonicUsec();
  notifier.reloading('reloading');
  notifier.stopping('bye');
  const [ready, reloading, stopping] = receiver.messages();
  assert.deepEqual(ready, { READY: '1', STATUS: 'serving with a newline', MAINPID: String(process.pid) });
  assert.equal(reloading!.RELOADING, '1');
  assert.ok(BigInt(reloading!.MONOTONIC_USEC!) >= before);
  assert.deepEqual(stopping, { STOPPING: '1', STATUS: 'bye' });
  notifier.status('x'.repeat(100_000));
  assert.equal(receiver.messages()[3]!.STATUS!.length, 1000, 'a long STATUS is shortened');

  const errors: string[] = [];
  const lost = new Notifier(join(dir, 'absent.sock'), (m) => errors.push(m));
  assert.equal(lost.send({ STATUS: 'a' }), false);
  assert.equal(lost.send({ STATUS: 'b' }), false);
  assert.equal(errors.length, 1);
  assert.equal(new Notifier(undefined).send({ READY: '1' }), false, 'not under systemd: nothing is sent');
});
