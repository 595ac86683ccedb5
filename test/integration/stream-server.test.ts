// The streaming server with a fake backend: SPDY and WebSocket exec with
// exit codes, stdin and resize; protocol negotiation; single-use and
// expiring tokens; port-forward over SPDY and WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { StreamServer } from '../../src/stream/server.ts';
import type { StreamBackend, TerminalSize } from '../../src/stream/backend.ts';
import { SpdyClient, openWebSocket, rawWebSocket, upgrade, webSocketTunnel, wsFrame } from '../helpers/stream-client.ts';

interface Fake {
  server: StreamServer;
  sizes: TerminalSize[];
  echo: Server;
}

async function start(t: any, tokenSeconds = 60): Promise<Fake> {
  const sizes: TerminalSize[] = [];
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const echoPort = (echo.address() as any).port;
  const backend: StreamBackend = {
    async exec(_id, cmd, io) {
      io.onResize((size) => sizes.push(size));
      if (cmd[0] === 'cat') {
        if (io.stdin) for await (const chunk of io.stdin) io.stdout!.write(chunk);
        return 0;
      }
      if (cmd[0] === 'resize') {
        while (!sizes.length) await new Promise((r) => setTimeout(r, 10));
        io.stdout!.write(`${sizes[0]!.height} ${sizes[0]!.width}\n`);
        return 0;
      }
      io.stdout?.write('out\n');
      io.stderr?.write('err\n');
      return Number(cmd[1] ?? 0);
    },
    async attach(_id, io) {
      io.stdout?.write('attached\n');
    },
    async portForward(_pod, port) {
      if (port !== 80) throw new Error('connection refused');
      // The in-pod dial takes a while: whatever the client sends meanwhile must wait, not be lost.
      await new Promise((r) => setTimeout(r, 100));
      const socket = connect(echoPort, '127.0.0.1');
      await once(socket, 'connect');
      return socket;
    },
  };
  const server = new StreamServer(
    { address: '127.0.0.1', port: 0, tlsCert: '', tlsKey: '', tokenTimeoutSeconds: () => tokenSeconds },
    backend,
    pino({ level: 'silent' }),
  );
  await server.start();
  t.after(async () => {
    await server.close();
    echo.close();
  });
  return { server, sizes, echo };
}

const execRequest = (cmd: string[], extra: Partial<{ stdin: boolean; tty: boolean; stderr: boolean }> = {}) => ({
  kind: 'exec' as const,
  containerId: 'c1',
  cmd,
  tty: false,
  stdin: false,
  stdout: true,
  stderr: true,
  ...extra,
});

test('SPDY exec delivers stdout, stderr and a NonZeroExitCode status', async (t) => {
  const { server } = await start(t);
  const url = server.prepare(execRequest(['sh', '3']));
  const up = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io', 'channel.k8s.io']);
  assert.equal(up.status, 101);
  assert.equal(up.headers['x-stream-protocol-version'], 'v4.channel.k8s.io');
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error' });
  const stdout = await client.open({ streamtype: 'stdout' });
  const stderr = await client.open({ streamtype: 'stderr' });
  await Promise.all([error.ended, stdout.ended, stderr.ended]);
  assert.equal(stdout.text(), 'out\n');
  assert.equal(stderr.text(), 'err\n');
  const status = JSON.parse(error.text());
  assert.equal(status.status, 'Failure');
  assert.equal(status.reason, 'NonZeroExitCode');
  assert.deepEqual(status.details.causes, [{ reason: 'ExitCode', message: '3' }]);
  await client.closed;
});

test('SPDY exec with stdin echoes it; success is a Success status', async (t) => {
  const { server } = await start(t);
  const up = await upgrade(server.prepare(execRequest(['cat'], { stdin: true, stderr: false })), 'SPDY/3.1', ['v5.channel.k8s.io']);
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error' });
  const stdin = await client.open({ streamtype: 'stdin' });
  const stdout = await client.open({ streamtype: 'stdout' });
  await stdout.replied;
  await stdin.write('hello ');
  await stdin.write('world');
  await stdin.end();
  await Promise.all([error.ended, stdout.ended]);
  assert.equal(stdout.text(), 'hello world');
  assert.deepEqual(JSON.parse(error.text()), { metadata: {}, status: 'Success' });
});

test('SPDY exec with a terminal receives resize events', async (t) => {
  const { server, sizes } = await start(t);
  const up = await upgrade(server.prepare(execRequest(['resize'], { tty: true, stderr: false })), 'SPDY/3.1', ['v4.channel.k8s.io']);
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error' });
  const stdout = await client.open({ streamtype: 'stdout' });
  const resize = await client.open({ streamtype: 'resize' });
  await resize.write(JSON.stringify({ Width: 100, Height: 40 }) + '\n');
  await Promise.all([error.ended, stdout.ended]);
  assert.equal(stdout.text(), '40 100\n');
  assert.deepEqual(sizes[0], { width: 100, height: 40 });
});

test('an unsupported protocol is refused with the accepted list; tokens are single-use', async (t) => {
  const { server } = await start(t);
  const url = server.prepare(execRequest(['sh']));
  const refused = await upgrade(url, 'SPDY/3.1', ['v9.channel.k8s.io']);
  assert.equal(refused.status, 403);
  assert.match(String(refused.headers['x-accepted-stream-protocol-versions']), /v4\.channel\.k8s\.io/);
  const again = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io']);
  assert.equal(again.status, 404);
  assert.match(again.body!, /already used, or has expired/);
  const plain = await fetch(server.prepare(execRequest(['sh'])));
  assert.equal(plain.status, 400);
});

test('expired tokens are refused', async (t) => {
  const { server } = await start(t, 0.05);
  const url = server.prepare(execRequest(['sh']));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io'])).status, 404);
});

test('WebSocket exec (v5 and base64) carries channels, stdin close and the status', async (t) => {
  const { server } = await start(t);
  const { ws, channels, closed } = await openWebSocket(server.prepare(execRequest(['cat'], { stdin: true, stderr: false })), ['v5.channel.k8s.io']);
  ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ping')]));
  ws.send(Buffer.from([255, 0]));
  assert.equal(await closed, 1000);
  assert.equal(Buffer.concat(channels.get(1)!).toString(), 'ping');
  assert.equal(JSON.parse(Buffer.concat(channels.get(3)!).toString()).status, 'Success');

  const b64 = await openWebSocket(server.prepare(execRequest(['sh', '2'])), ['base64.channel.k8s.io']);
  await b64.closed;
  assert.equal(Buffer.concat(b64.channels.get(1)!).toString(), 'out\n');
  assert.equal(Buffer.concat(b64.channels.get(2)!).toString(), 'err\n');
});

test('port-forward over SPDY relays bytes and reports dial errors on the error stream', async (t) => {
  const { server } = await start(t);
  const up = await upgrade(server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [80] }), 'SPDY/3.1', ['portforward.k8s.io']);
  assert.equal(up.status, 101);
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error', port: '80', requestid: '0' });
  const data = await client.open({ streamtype: 'data', port: '80', requestid: '0' });
  await data.write('echo me');
  while (data.text() !== 'echo me') await new Promise((r) => setTimeout(r, 10));
  await data.end();
  await data.ended;
  const badError = await client.open({ streamtype: 'error', port: '81', requestid: '1' });
  await client.open({ streamtype: 'data', port: '81', requestid: '1' });
  await badError.ended;
  assert.match(badError.text(), /error forwarding port 81 to pod p1: connection refused/);
  assert.equal(error.text(), '');
  client.destroy();
});

test('port-forward over WebSocket uses a data and an error channel per port', { timeout: 10_000 }, async (t) => {
  const { server } = await start(t);
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [80] }) + '?port=80';
  const { ws, channels } = await openWebSocket(url, ['portforward.k8s.io']);
  while (!channels.get(0)?.length) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual([...channels.get(0)![0]!], [80, 0], 'the first data message is the port, little-endian');
  ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('hi')]));
  while (Buffer.concat(channels.get(0)!.slice(1)).toString() !== 'hi') await new Promise((r) => setTimeout(r, 10));
  ws.close();
});

test('a malformed WebSocket frame closes its stream with 1002 (1007 for bad UTF-8); the server serves on', async (t) => {
  const { server } = await start(t);
  const cases: Array<[Buffer, number]> = [
    [wsFrame({ opcode: 0x9, payload: Buffer.from('x'), length: 127 }), 1002],
    [wsFrame({ opcode: 0x2, payload: Buffer.from([0, 1]), mask: false }), 1002],
    [wsFrame({ opcode: 0x1, payload: Buffer.from([0x30, 0xc3, 0x28]) }), 1007],
  ];
  for (const [frame, code] of cases) {
    const ws = await rawWebSocket(server.prepare(execRequest(['cat'], { stdin: true, stderr: false })), ['v5.channel.k8s.io']);
    assert.equal(ws.status, 101);
    ws.socket.write(frame);
    assert.equal(await ws.closed, code);
  }
  const b64 = await openWebSocket(server.prepare(execRequest(['sh', '0'])), ['v4.channel.k8s.io']);
  assert.equal(await b64.closed, 1000);
  assert.equal(Buffer.concat(b64.channels.get(1)!).toString(), 'out\n');
});

/** Channel messages of a raw WebSocket, binary or base64 text, by channel. */
function channelsOf(ws: Awaited<ReturnType<typeof rawWebSocket>>): Map<number, Buffer[]> {
  const channels = new Map<number, Buffer[]>();
  ws.onFrame(({ opcode, payload }) => {
    if (opcode !== 1 && opcode !== 2) return;
    const channel = opcode === 2 ? payload[0]! : payload[0]! - 48;
    const data = opcode === 2 ? payload.subarray(1) : Buffer.from(payload.subarray(1).toString(), 'base64');
    channels.set(channel, [...(channels.get(channel) ?? []), data]);
  });
  return channels;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

test('port-forward over SPDY tunnelled in WebSocket (SPDY/3.1+portforward.k8s.io, as client-go sends it)', { timeout: 10_000 }, async (t) => {
  const { server } = await start(t);
  const raw = await rawWebSocket(server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [80] }), ['SPDY/3.1+portforward.k8s.io']);
  assert.equal(raw.status, 101, raw.head);
  assert.match(raw.head, /^Sec-WebSocket-Protocol: SPDY\/3\.1\+portforward\.k8s\.io$/im);
  const client = new SpdyClient(webSocketTunnel(raw));
  const error = await client.open({ streamtype: 'error', port: '80', requestid: '0' });
  await error.end();
  const data = await client.open({ streamtype: 'data', port: '80', requestid: '0' });
  // Sent at once, before the server replied or dialed.
  await data.write('through the tunnel');
  await until(() => data.text() === 'through the tunnel');
  await data.end();
  await error.ended;
  assert.equal(error.text(), '');
  const bad = await client.open({ streamtype: 'error', port: '81', requestid: '1' });
  await client.open({ streamtype: 'data', port: '81', requestid: '1' });
  await bad.ended;
  assert.match(bad.text(), /error forwarding port 81 to pod p1: connection refused/);
  client.destroy();
});

for (const [protocols, encoding] of [
  [['v4.channel.k8s.io'], 'binary'],
  [['v4.base64.channel.k8s.io'], 'base64'],
  [[], 'binary'],
] as const) {
  test(`port-forward over WebSocket (${protocols[0] ?? 'no subprotocol'}): data sent right after the port frames reaches the pod; ports may be listed with commas`, {
    timeout: 10_000,
  }, async (t) => {
    const { server } = await start(t);
    const url = server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [] }) + '?port=80,81';
    const raw = await rawWebSocket(url, [...protocols]);
    assert.equal(raw.status, 101, raw.head);
    if (!protocols.length) assert.doesNotMatch(raw.head, /Sec-WebSocket-Protocol/i);
    const channels = channelsOf(raw);
    const send = (channel: number, data: string) =>
      raw.socket.write(
        encoding === 'binary'
          ? wsFrame({ opcode: 2, payload: Buffer.concat([Buffer.from([channel]), Buffer.from(data)]) })
          : wsFrame({ opcode: 1, payload: Buffer.from(String.fromCharCode(48 + channel) + Buffer.from(data).toString('base64')) }),
      );
    await until(() => (channels.get(0)?.length ?? 0) > 0 && (channels.get(2)?.length ?? 0) > 0);
    assert.deepEqual([...channels.get(0)![0]!], [80, 0]);
    assert.deepEqual([...channels.get(2)![0]!], [81, 0]);
    send(0, 'early ');
    send(0, 'bytes');
    await until(() => Buffer.concat(channels.get(0)!.slice(1)).toString() === 'early bytes');
    await until(() => (channels.get(3)?.length ?? 0) > 1);
    assert.match(Buffer.concat(channels.get(3)!.slice(1)).toString(), /error forwarding port 81 to pod p1: connection refused/);
    raw.socket.end(wsFrame({ opcode: 8, payload: Buffer.from([3, 0xe8]) }));
    await raw.closed;
  });
}
