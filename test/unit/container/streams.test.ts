// Streaming exec and attach through conmon's attach socket (SOCK_SEQPACKET
// via koffi): separate stdout/stderr, stdin, terminals with resize, exit
// codes, and detaching from a container that keeps running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { StreamIO, TerminalSize } from '../../../src/stream/backend.ts';
import { containerStreams } from '../../../src/container/exec.ts';
import { containerConfig, setup, waitState } from './service-fixture.ts';

interface FakeIO extends StreamIO {
  out(): string;
  err(): string;
  resize(size: TerminalSize): void;
  input: PassThrough;
}

function fakeIO(tty: boolean, withStdin: boolean): FakeIO {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  stdout.on('data', (d) => (out += d));
  const stderr = new PassThrough();
  stderr.on('data', (d) => (err += d));
  const listeners: Array<(s: TerminalSize) => void> = [];
  const input = new PassThrough();
  return {
    input,
    stdin: withStdin ? input : undefined,
    stdout,
    stderr: tty ? undefined : stderr,
    tty,
    onResize: (l) => void listeners.push(l),
    out: () => out,
    err: () => err,
    resize: (s) => listeners.forEach((l) => l(s)),
  };
}

test('exec streams stdout and stderr apart, takes stdin, returns the exit code', async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const id = await service.create(sandbox.id, containerConfig('sleeper', ['/bin/sh', '-c', 'while true; do sleep 1; done']), null);
  await service.start(id);

  const io = fakeIO(false, false);
  const code = await streams.exec(id, ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], io, new AbortController().signal);
  assert.equal(code, 3);
  assert.equal(io.out(), 'out\n');
  assert.equal(io.err(), 'err\n');

  const withInput = fakeIO(false, true);
  const running = streams.exec(id, ['/bin/cat'], withInput, new AbortController().signal);
  withInput.input.write('hello ');
  withInput.input.end('world');
  assert.equal(await running, 0);
  assert.equal(withInput.out(), 'hello world');
});

test('exec with a terminal sees a tty and its size', async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const id = await service.create(sandbox.id, containerConfig('tty', ['/bin/sh', '-c', 'while true; do sleep 1; done']), null);
  await service.start(id);
  const io = fakeIO(true, true);
  const running = streams.exec(id, ['/bin/sh'], io, new AbortController().signal);
  // The size comes at once, before the process has its terminal, as kubectl sends it.
  io.resize({ width: 77, height: 33 });
  io.input.write('tty; stty size; exit 6\n');
  assert.equal(await running, 6);
  assert.match(io.out(), /\/dev\/pts\/\d+/);
  assert.match(io.out(), /33 77/);
});

test('attach reads the container output, writes its stdin and detaches leaving it running', async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const script = 'while read line; do echo "got $line"; echo "warn $line" >&2; done';
  const id = await service.create(sandbox.id, containerConfig('echo', ['/bin/sh', '-c', script], { stdin: true, stdin_once: false }), null);
  await service.start(id);
  const io = fakeIO(false, true);
  const detach = new AbortController();
  const attached = streams.attach(id, io, detach.signal);
  await new Promise((r) => setTimeout(r, 200));
  io.input.write('one\n');
  for (let i = 0; i < 100 && !io.err().includes('warn one'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(io.out(), /got one/);
  assert.match(io.err(), /warn one/);
  detach.abort();
  await attached;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(service.get(id).state, 'CONTAINER_RUNNING');
});

test('a container with a terminal can be attached to with a tty and resized', async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const id = await service.create(sandbox.id, containerConfig('shell', ['/bin/sh'], { tty: true, stdin: true, stdin_once: false }), null);
  await service.start(id);
  const io = fakeIO(true, true);
  const attached = streams.attach(id, io, new AbortController().signal);
  await new Promise((r) => setTimeout(r, 200));
  io.resize({ width: 91, height: 19 });
  await new Promise((r) => setTimeout(r, 200));
  io.input.write('stty size; exit 4\n');
  await attached;
  assert.match(io.out(), /19 91/);
  await waitState(service, id, 'CONTAINER_EXITED');
  assert.equal(service.get(id).exitCode, 4);
});

test("attach with stdin_once: the client closing stdin closes the container's stdin; output flows until it exits", { timeout: 30_000 }, async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const script = 'while read line; do echo "got $line"; done; echo "stdin closed"';
  const id = await service.create(sandbox.id, containerConfig('once', ['/bin/sh', '-c', script], { stdin: true, stdin_once: true }), null);
  await service.start(id);
  const io = fakeIO(false, true);
  const attached = streams.attach(id, io, new AbortController().signal);
  io.input.end('last\n');
  await attached;
  assert.match(io.out(), /got last\nstdin closed\n/);
  await waitState(service, id, 'CONTAINER_EXITED');
});

test('attach without stdin_once: the client closing stdin detaches it; the container keeps running with its stdin open', { timeout: 30_000 }, async (t) => {
  const { service, sandbox } = await setup(t);
  const streams = containerStreams(service, '/usr/bin/conmon');
  const script = 'while read line; do echo "got $line"; done; echo "stdin closed"';
  const id = await service.create(sandbox.id, containerConfig('open', ['/bin/sh', '-c', script], { stdin: true, stdin_once: false }), null);
  await service.start(id);
  const io = fakeIO(false, true);
  const attached = streams.attach(id, io, new AbortController().signal);
  io.input.end('first\n');
  await attached;
  assert.equal(service.get(id).state, 'CONTAINER_RUNNING');
  // Still reading: a second client's input reaches it.
  const again = fakeIO(false, true);
  const second = streams.attach(id, again, new AbortController().signal);
  again.input.write('second\n');
  for (let i = 0; i < 100 && !again.out().includes('got second'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(again.out(), /got second/);
  again.input.end();
  await second;
  assert.equal(service.get(id).state, 'CONTAINER_RUNNING');
});
