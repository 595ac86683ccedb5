// Pure parts of the container service: signals, filters, names, log paths,
// conmon's sync and control messages, output caps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  exitReason,
  matchesFilter,
  pickRepoDigest,
  reservationName,
  stopSignal,
  toContainer,
  toStatus,
  type ContainerRecord,
} from '../../../src/container/record.ts';
import { execProcess } from '../../../src/container/ops/exec.ts';
import { criLogPath } from '../../../src/container/ops/create.ts';
import { conmonCreateArgs, ctlMessage, CTL_REOPEN_LOG, CTL_RESIZE, parseSyncMessages } from '../../../src/container/conmon.ts';
import { CappedBuffer, commandProcesses } from '../../../src/container/execsync.ts';
import { runtimeMessage } from '../../../src/container/runtime.ts';

test('stop signal: the request, else the image, else SIGTERM', () => {
  assert.equal(stopSignal('SIGNAL_SIGINT', 'SIGQUIT'), 'SIGINT');
  assert.equal(stopSignal('SIGNAL_RUNTIME_DEFAULT', 'SIGQUIT'), 'SIGQUIT');
  assert.equal(stopSignal(undefined, 'quit'), 'SIGQUIT');
  assert.equal(stopSignal(undefined, '9'), '9');
  assert.equal(stopSignal(undefined, ''), 'SIGTERM');
  assert.equal(stopSignal('SIGNAL_SIGRTMINPLUS3', ''), 'SIGRTMIN+3');
  assert.equal(stopSignal('SIGNAL_SIGRTMAXMINUS2', ''), 'SIGRTMAX-2');
});

test('exit reasons', () => {
  assert.equal(exitReason(0, false), 'Completed');
  assert.equal(exitReason(2, false), 'Error');
  assert.equal(exitReason(137, true), 'OOMKilled');
});

test('filters: id prefix, state, pod id prefix, labels', () => {
  const r = { id: 'abcdef', sandboxId: 'pod123', state: 'CONTAINER_RUNNING', config: { labels: { a: '1', b: '2' } } } as unknown as ContainerRecord;
  const f = (x: object) => ({ id: '', state: null, pod_sandbox_id: '', label_selector: {}, ...x });
  assert.ok(matchesFilter(r, null));
  assert.ok(matchesFilter(r, f({ id: 'abc' })));
  assert.ok(!matchesFilter(r, f({ id: 'abd' })));
  assert.ok(matchesFilter(r, f({ state: { state: 'CONTAINER_RUNNING' } })));
  assert.ok(!matchesFilter(r, f({ state: { state: 'CONTAINER_EXITED' } })));
  assert.ok(matchesFilter(r, f({ pod_sandbox_id: 'pod1' })));
  assert.ok(!matchesFilter(r, f({ pod_sandbox_id: 'pod2' })));
  assert.ok(matchesFilter(r, f({ label_selector: { a: '1' } })));
  assert.ok(!matchesFilter(r, f({ label_selector: { a: '1', c: '3' } })));
});

test('reservation names follow name_pod_namespace_uid_attempt', () => {
  const name = reservationName({ metadata: { name: 'c', attempt: 2 } } as any, { metadata: { name: 'p', namespace: 'n', uid: 'u', attempt: 0 } } as any);
  assert.equal(name, 'c_p_n_u_2');
});

test('log paths stay inside the pod log directory', () => {
  assert.equal(criLogPath('/var/log/pods/x', 'c/0.log'), '/var/log/pods/x/c/0.log');
  assert.equal(criLogPath('', 'c/0.log'), '');
  assert.throws(() => criLogPath('/var/log/pods/x', '../../etc/passwd'));
  assert.throws(() => criLogPath('/var/log/pods/x', '/etc/passwd'));
});

test('conmon sync messages and control messages', () => {
  const { messages, rest } = parseSyncMessages('{"data": 42}\n{"data": -1, "message": "no \\"such\\" file"}\n{"da');
  assert.deepEqual(messages, [{ data: 42 }, { data: -1, message: 'no "such" file' }]);
  assert.equal(rest, '{"da');
  assert.equal(ctlMessage(CTL_REOPEN_LOG), '2 0 0\n');
  assert.equal(ctlMessage(CTL_RESIZE, 40, 120), '1 40 120\n');
  assert.equal(ctlMessage(CTL_RESIZE, 4000, -1), '1 1000 0\n');
});

test('conmon create arguments', () => {
  const args = conmonCreateArgs({
    conmonPath: '/c',
    runtimePath: '/r',
    runtimeArgs: ['--root', '/run/x'],
    id: 'ID',
    name: 'N',
    socketDir: '/s',
    terminal: true,
    stdin: true,
    stdinOnce: false,
    bundle: '/b',
    exitDir: '/e',
    logPath: '/l/0.log',
    systemdCgroup: false,
  });
  assert.ok(args.includes('--terminal') && args.includes('--stdin') && args.includes('--leave-stdin-open'));
  assert.ok(args.includes('--runtime-arg=--root') && args.includes('--runtime-arg=/run/x'));
  assert.equal(args[args.indexOf('--log-path') + 1], 'k8s-file:/l/0.log');
  assert.equal(args[args.indexOf('--exit-dir') + 1], '/e');
});

test('exec process keeps the container process but runs the command', () => {
  const p = execProcess({ user: { uid: 0, gid: 0 }, args: ['a'], env: ['X=1'], cwd: '/w', terminal: true, consoleSize: { height: 1, width: 1 } }, ['b'], false);
  assert.deepEqual(p, { user: { uid: 0, gid: 0 }, args: ['b'], env: ['X=1'], cwd: '/w', terminal: false });
});

test('capped buffers keep the first bytes only', () => {
  const b = new CappedBuffer(5);
  b.push(Buffer.from('abc'));
  b.push(Buffer.from('defg'));
  b.push(Buffer.from('h'));
  assert.equal(b.value().toString(), 'abcde');
  assert.ok(b.truncated);
});

test('runtime error messages are reduced to their message', () => {
  assert.equal(runtimeMessage('time="2024" level=error msg="container \\"x\\" does not exist"\n'), 'container "x" does not exist');
  assert.equal(runtimeMessage('{"level":"error","msg":"boom"}\n'), 'boom');
});

test('commandProcesses: descendants, then session and group members re-parented elsewhere; children before the command', () => {
  const table = [
    { pid: 1, state: 'S', ppid: 0, pgrp: 1, session: 1 },
    { pid: 100, state: 'S', ppid: 1, pgrp: 100, session: 100 }, // runc, not part of the command
    { pid: 200, state: 'S', ppid: 150, pgrp: 200, session: 200 }, // container init
    { pid: 300, state: 'S', ppid: 100, pgrp: 300, session: 300 }, // the command (sh -c), a session leader
    { pid: 301, state: 'S', ppid: 300, pgrp: 300, session: 300 }, // sleep &
    { pid: 302, state: 'S', ppid: 200, pgrp: 300, session: 300 }, // orphan re-parented to the container's init
    { pid: 303, state: 'S', ppid: 300, pgrp: 303, session: 303 }, // setsid child
    { pid: 304, state: 'S', ppid: 200, pgrp: 303, session: 303 }, // its orphan
    { pid: 305, state: 'S', ppid: 304, pgrp: 305, session: 303 }, // grandchild in a group of its own
    { pid: 400, state: 'S', ppid: 200, pgrp: 200, session: 200 }, // the container's own process
  ];
  const found = commandProcesses(300, table);
  assert.deepEqual([...found].sort(), [301, 302, 303, 304, 305, 300].sort());
  assert.equal(found.at(-1), 300);
  assert.ok(found.indexOf(305) < found.indexOf(304));
  assert.deepEqual(commandProcesses(999, table), []);
});

test('commandProcesses: a command that is not a session leader does not take its parent session along', () => {
  const table = [
    { pid: 100, state: 'S', ppid: 1, pgrp: 100, session: 100 },
    { pid: 300, state: 'S', ppid: 100, pgrp: 100, session: 100 },
    { pid: 301, state: 'S', ppid: 300, pgrp: 100, session: 100 },
    { pid: 101, state: 'S', ppid: 1, pgrp: 100, session: 100 },
  ];
  assert.deepEqual(commandProcesses(300, table), [301, 300]);
});

test('image_ref is the repo digest of the repository the container named; the listing keeps the image id', () => {
  const digests = ['registry.example.com/other@sha256:' + 'a'.repeat(64), 'docker.io/library/busybox@sha256:' + 'b'.repeat(64)];
  assert.equal(pickRepoDigest(digests, ['', 'busybox']), digests[1]);
  // kubelet passes the image id and names the image in user_specified_image.
  assert.equal(pickRepoDigest(digests, ['docker.io/library/busybox:1.36', 'sha256:' + 'c'.repeat(64)]), digests[1]);
  assert.equal(pickRepoDigest(digests, ['', 'sha256:' + 'c'.repeat(64)]), digests[0]);
  assert.equal(pickRepoDigest([], ['busybox']), undefined);
  const record = {
    id: 'c',
    sandboxId: 'p',
    config: { metadata: { name: 'c' }, image: { image: 'busybox' } },
    imageRef: 'busybox',
    imageId: 'sha256:' + 'c'.repeat(64),
    imageRepoDigest: digests[1],
  } as unknown as ContainerRecord;
  assert.equal(toStatus(record).image_ref, digests[1]);
  assert.equal(toStatus(record).image_id, record.imageId);
  assert.equal(toContainer(record).image_ref, record.imageId);
  assert.equal(toStatus({ ...record, imageRepoDigest: undefined }).image_ref, record.imageId);
});
