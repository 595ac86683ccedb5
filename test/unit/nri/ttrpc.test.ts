// ttrpc framing, NRI's multiplexer and the ttrpc client and server, over real
// unix sockets; hostile peers (malformed, truncated, oversized and random
// frames) must get a status or a closed connection, never a crash or
// unbounded buffering.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAX_MUX_PAYLOAD, Mux } from '../../../src/nri/mux.ts';
import { codec } from '../../../src/nri/proto.ts';
import { CallTimeoutError, Code, ConnectionClosedError, TtrpcClient, TtrpcError, TtrpcServer, type Handler } from '../../../src/nri/ttrpc.ts';
import { FrameDecoder, MAX_MESSAGE, encodeHeader, type FrameHeader } from '../../../src/nri/ttrpc-frame.ts';

const dir = mkdtempSync(join(tmpdir(), 'tscri-ttrpc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

const requestCodec = codec<object, { service: string; method: string; payload: Buffer }>('ttrpc.Request');
const responseCodec = codec<object, { status: { code: number; message: string } | null; payload: Buffer }>('ttrpc.Response');

/** A unix socket pair: the listening side's socket and the connecting side's. */
async function socketPair(): Promise<{ a: Socket; b: Socket; server: Server }> {
  const path = join(dir, `s${counter++}`);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const b = connect(path);
  const a = await accepted;
  server.close();
  return { a, b, server };
}

function echoHandlers(extra: Record<string, Handler> = {}): Map<string, Handler> {
  return new Map<string, Handler>([
    ['svc/Echo', async (payload) => payload],
    [
      'svc/Fail',
      async () => {
        throw new TtrpcError(Code.FailedPrecondition, 'not now');
      },
    ],
    ['svc/Hang', (_payload, context) => new Promise((_, reject) => context.signal.addEventListener('abort', () => reject(new Error('aborted'))))],
    ...Object.entries(extra),
  ]);
}

async function pair(handlers = echoHandlers()) {
  const { a, b } = await socketPair();
  const serverMux = new Mux(a);
  const clientMux = new Mux(b);
  new TtrpcServer(serverMux.open(1), handlers, { maxInFlight: 4 });
  const client = new TtrpcClient(clientMux.open(1));
  return { client, serverMux, clientMux, rawClient: b };
}

test('frame decoder reassembles messages split at every byte', () => {
  const frames: [FrameHeader, Buffer][] = [];
  const decoder = new FrameDecoder({ frame: (h, p) => frames.push([h, p]), oversized: () => assert.fail('oversized') });
  const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(5000, 7)];
  const bytes = Buffer.concat(payloads.flatMap((p, i) => [encodeHeader({ length: p.length, streamId: 2 * i + 1, type: 1, flags: 0 }), p]));
  for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1));
  assert.deepEqual(
    frames.map(([h]) => h.streamId),
    [1, 3, 5],
  );
  assert.deepEqual(
    frames.map(([, p]) => p.length),
    [5, 0, 5000],
  );
  assert.equal(decoder.buffered(), 0);
});

test('frame decoder skips an oversized message without buffering it', () => {
  const events: string[] = [];
  const decoder = new FrameDecoder({ frame: (h) => events.push(`frame ${h.streamId}`), oversized: (h) => events.push(`oversized ${h.length}`) });
  decoder.push(encodeHeader({ length: 0xffffffff, streamId: 1, type: 1, flags: 0 }));
  for (let i = 0; i < 64; i++) {
    decoder.push(Buffer.alloc(1 << 20));
    assert.ok(decoder.buffered() <= 10, 'skipped bytes are not kept');
  }
  assert.deepEqual(events, [`oversized ${0xffffffff}`]);
});

test('frame decoder never throws on random bytes', () => {
  for (let round = 0; round < 200; round++) {
    const decoder = new FrameDecoder({ frame: () => undefined, oversized: () => undefined });
    const bytes = Buffer.alloc(Math.floor(Math.random() * 4096));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    decoder.push(bytes);
    assert.ok(decoder.buffered() <= MAX_MESSAGE + 10);
  }
});

test('a call is answered; a remote error carries its status', async () => {
  const { client, clientMux } = await pair();
  assert.equal((await client.call('svc', 'Echo', Buffer.from('ping'), 1000)).toString(), 'ping');
  const big = Buffer.alloc(100_000, 1);
  assert.deepEqual(await client.call('svc', 'Echo', big, 1000), big);
  await assert.rejects(
    client.call('svc', 'Fail', Buffer.alloc(0), 1000),
    (err: TtrpcError) => err.code === Code.FailedPrecondition && /not now/.test(err.message),
  );
  await assert.rejects(client.call('svc', 'Nope', Buffer.alloc(0), 1000), (err: TtrpcError) => err.code === Code.Unimplemented);
  clientMux.close();
});

test('a call without an answer times out, and the server sees its deadline', async () => {
  let aborted = false;
  const { client, clientMux } = await pair(
    echoHandlers({
      'svc/Slow': (_p, context) =>
        new Promise((resolve) =>
          context.signal.addEventListener('abort', () => {
            aborted = true;
            resolve(Buffer.alloc(0));
          }),
        ),
    }),
  );
  await assert.rejects(client.call('svc', 'Slow', Buffer.alloc(0), 100), CallTimeoutError);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(aborted, 'the handler was told the deadline passed');
  // The late answer is dropped and the connection still serves.
  assert.equal((await client.call('svc', 'Echo', Buffer.from('x'), 1000)).toString(), 'x');
  clientMux.close();
});

test('closing the connection fails calls in flight', async () => {
  const { client, serverMux } = await pair();
  const call = client.call('svc', 'Hang', Buffer.alloc(0), 5000);
  setTimeout(() => serverMux.close(), 20);
  await assert.rejects(call, ConnectionClosedError);
  await assert.rejects(client.call('svc', 'Echo', Buffer.alloc(0), 100), ConnectionClosedError);
});

test('a server answers calls beyond its limit in flight with RESOURCE_EXHAUSTED', async () => {
  const { client, clientMux } = await pair();
  const hanging = [1, 2, 3, 4].map(() => client.call('svc', 'Hang', Buffer.alloc(0), 300).catch(() => undefined));
  await assert.rejects(client.call('svc', 'Echo', Buffer.alloc(0), 300), (err: TtrpcError) => err.code === Code.ResourceExhausted);
  await Promise.all(hanging);
  clientMux.close();
});

/** Writes raw ttrpc messages on mux connection 1 and collects the server's answers. */
async function rawServer() {
  const { a, b } = await socketPair();
  const serverMux = new Mux(a);
  new TtrpcServer(serverMux.open(1), echoHandlers());
  const answers: { streamId: number; code: number; message: string }[] = [];
  const clientMux = new Mux(b);
  const conn = clientMux.open(1);
  const decoder = new FrameDecoder({
    frame: (h, p) => {
      const r = responseCodec.decode(p);
      answers.push({ streamId: h.streamId, code: r.status?.code ?? 0, message: r.status?.message ?? '' });
    },
    oversized: () => undefined,
  });
  conn.onData((chunk) => decoder.push(chunk));
  const send = (streamId: number, type: number, payload: Buffer, length = payload.length) =>
    conn.write(Buffer.concat([encodeHeader({ length, streamId, type, flags: 0 }), payload]));
  const request = (method: string) => requestCodec.encode({ service: 'svc', method, payload: Buffer.from('ok') });
  const until = async (n: number) => {
    for (let i = 0; i < 100 && answers.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  return { serverMux, clientMux, rawSocket: b, conn, answers, send, request, until };
}

test('hostile requests get a precise status and the server serves on', async () => {
  const s = await rawServer();
  s.send(2, 1, s.request('Echo')); // even stream id
  s.send(1, 1, Buffer.from([0xff, 0xff, 0xff])); // not a Request
  s.send(1, 1, s.request('Echo')); // stream id reused
  s.send(5, 3, Buffer.alloc(3)); // data message: no streams here
  s.send(7, 1, Buffer.alloc(0), MAX_MESSAGE + 1); // announces more than the limit...
  s.conn.write(Buffer.alloc(MAX_MESSAGE + 1)); // ...and sends it: skipped
  s.send(9, 1, s.request('Echo'));
  await s.until(6);
  assert.deepEqual(
    s.answers.map((a) => [a.streamId, a.code]),
    [
      [2, Code.InvalidArgument],
      [1, Code.InvalidArgument],
      [1, Code.InvalidArgument],
      [5, Code.InvalidArgument],
      [7, Code.ResourceExhausted],
      [9, Code.OK],
    ],
  );
  s.clientMux.close();
});

test('an unknown message type closes the connection', async () => {
  const s = await rawServer();
  const closed = new Promise<void>((resolve) => s.conn.onClose(() => resolve()));
  s.send(1, 9, Buffer.alloc(0));
  s.send(3, 1, s.request('Echo'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(s.answers.length, 0);
  s.clientMux.close();
  await closed;
});

test('a multiplexed frame over the limit closes the socket without buffering it', async () => {
  const { a, b } = await socketPair();
  const mux = new Mux(a);
  let closedWith: Error | undefined;
  mux.onClose((err) => (closedWith = err));
  const header = Buffer.alloc(8);
  header.writeUInt32BE(1, 0);
  header.writeUInt32BE(MAX_MUX_PAYLOAD + 1, 4);
  b.write(header);
  b.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 50));
  assert.match(closedWith?.message ?? '', /exceeds the limit/);
  b.destroy();
});

test('frames for connections nobody opened are skipped', async () => {
  const { a, b } = await socketPair();
  const mux = new Mux(a);
  const got: Buffer[] = [];
  mux.open(1).onData((chunk) => got.push(chunk));
  const frame = (id: number, data: Buffer) => {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(id, 0);
    header.writeUInt32BE(data.length, 4);
    return Buffer.concat([header, data]);
  };
  b.write(Buffer.concat([frame(7, Buffer.alloc(100_000)), frame(0, Buffer.from('zero')), frame(1, Buffer.from('mine'))]));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(Buffer.concat(got).toString(), 'mine');
  mux.close();
  b.destroy();
});

test('random frames and truncated headers never crash the server', async () => {
  for (let round = 0; round < 30; round++) {
    const s = await rawServer();
    s.rawSocket.on('error', () => undefined);
    const n = 1 + Math.floor(Math.random() * 8);
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.alloc(Math.floor(Math.random() * 64));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(Math.random() * 256);
      // Sometimes a raw multiplexed frame header with garbage, sometimes ttrpc garbage.
      if (Math.random() < 0.5) s.rawSocket.write(bytes);
      else s.conn.write(bytes);
    }
    s.rawSocket.end();
    await new Promise((r) => setTimeout(r, 5));
    s.serverMux.close();
  }
  // Still alive: a fresh pair serves.
  const { client, clientMux } = await pair();
  assert.equal((await client.call('svc', 'Echo', Buffer.from('alive'), 1000)).toString(), 'alive');
  clientMux.close();
});
