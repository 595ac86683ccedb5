// Clients that send the socket path as :authority (grpc-go before 1.52:
// kubelet before 1.26, crictl 1.26) are served by the daemon with
// legacy_authority = true; without it (the default) such a call is refused
// and the connection serves on. Node's own
// HTTP/2 client refuses to send such an authority, so these tests write the
// HTTP/2 frames themselves, encoded the way grpc-go encodes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { startDaemon } from '../helpers/daemon.ts';
import { HpackDecoder, huffmanEncode, writeInteger, type HeaderField } from '../../src/server/hpack.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TYPE = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7, CONTINUATION: 9 };

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** A literal with incremental indexing, Huffman strings: grpc-go's choice for new fields. */
function literal(name: number | string, value: string): Buffer {
  const str = (text: string) => {
    const raw = huffmanEncode(Buffer.from(text));
    return Buffer.concat([writeInteger(raw.length, 7, 0x80), raw]);
  };
  const head = typeof name === 'number' ? writeInteger(name, 6, 0x40) : Buffer.concat([Buffer.from([0x40]), str(name)]);
  return Buffer.concat([head, str(value)]);
}
const indexed = (index: number) => writeInteger(index, 7, 0x80);

/** grpc-go's first call on a connection: every field new to the table. */
function firstCall(path: string, authority: string): Buffer {
  return Buffer.concat([
    indexed(3), // :method POST
    indexed(6), // :scheme http
    literal(4, path),
    literal(1, authority),
    literal(31, 'application/grpc'),
    literal(58, 'grpc-go/1.51.0'),
    literal('te', 'trailers'),
  ]);
}

/** An empty gRPC message: not compressed, length 0 (an empty VersionRequest). */
const EMPTY_MESSAGE = Buffer.from('0000000000', 'hex');

interface StreamResult {
  headers: HeaderField[][];
  data: Buffer;
  reset?: number;
}

/** A raw HTTP/2 connection to the daemon's socket that decodes what the server sends. */
class RawClient {
  readonly socket: Socket;
  readonly streams = new Map<number, StreamResult>();
  goaway: number | undefined;
  closed = false;
  private received = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder();
  private waiters: Array<() => void> = [];

  constructor(path: string) {
    this.socket = createConnection(path);
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on('error', () => undefined);
    this.socket.write(Buffer.concat([PREFACE, frame(TYPE.SETTINGS, 0, 0, Buffer.alloc(0))]));
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** Waits until the stream has its trailers (END_STREAM) or a reset, or the connection ends. */
  async result(stream: number): Promise<StreamResult> {
    while (!this.done(stream) && !this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.streams.get(stream) ?? { headers: [], data: Buffer.alloc(0) };
  }

  async closedWith(): Promise<number | undefined> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.goaway;
  }

  private ended = new Set<number>();
  private done(stream: number): boolean {
    return this.ended.has(stream);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private stream(id: number): StreamResult {
    let s = this.streams.get(id);
    if (!s) this.streams.set(id, (s = { headers: [], data: Buffer.alloc(0) }));
    return s;
  }

  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    let block: Buffer[] = [];
    while (this.received.length >= 9) {
      const length = this.received.readUIntBE(0, 3);
      if (this.received.length < 9 + length) break;
      const type = this.received[3]!;
      const flags = this.received[4]!;
      const id = this.received.readUInt32BE(5) & 0x7fffffff;
      const payload = this.received.subarray(9, 9 + length);
      this.received = this.received.subarray(9 + length);
      if (type === TYPE.SETTINGS && !(flags & 1)) this.send(frame(TYPE.SETTINGS, 1, 0, Buffer.alloc(0)));
      if (type === TYPE.GOAWAY) this.goaway = payload.readUInt32BE(4);
      if (type === TYPE.RST_STREAM) {
        this.stream(id).reset = payload.readUInt32BE(0);
        this.ended.add(id);
      }
      if (type === TYPE.DATA) this.stream(id).data = Buffer.concat([this.stream(id).data, payload]);
      if (type === TYPE.HEADERS || type === TYPE.CONTINUATION) {
        block.push(type === TYPE.HEADERS && flags & 0x20 ? payload.subarray(5) : payload);
        if (flags & 0x4) {
          this.stream(id).headers.push(this.decoder.decode(Buffer.concat(block)));
          block = [];
        }
      }
      if (flags & 0x1 && (type === TYPE.DATA || type === TYPE.HEADERS)) this.ended.add(id);
    }
    this.wake();
  }
}

const header = (list: HeaderField[] | undefined, name: string) => list?.find((h) => h.name === name)?.value;

/** The call succeeded and its response names the runtime (VersionResponse field 2, "tscri"). */
function assertVersionAnswer(result: StreamResult, label: string): void {
  assert.equal(result.reset, undefined, `${label}: stream reset`);
  assert.equal(header(result.headers[0], ':status'), '200', label);
  assert.equal(header(result.headers.at(-1), 'grpc-status'), '0', `${label}: ${header(result.headers.at(-1), 'grpc-message')}`);
  assert.ok(result.data.includes(Buffer.from('\x12\x05tscri')), `${label}: runtime name in ${result.data.toString('hex')}`);
}

test('grpc-go style calls with the socket path as :authority are answered', async (t) => {
  const d = await startDaemon({ config: 'legacy_authority = true' });
  t.after(() => d.cleanup());
  const client = new RawClient(d.socket);
  t.after(() => client.socket.destroy());

  client.send(frame(TYPE.HEADERS, 0x4, 1, firstCall('/runtime.v1.RuntimeService/Version', d.socket)), frame(TYPE.DATA, 0x1, 1, EMPTY_MESSAGE));
  assertVersionAnswer(await client.result(1), 'first call');

  // The second call refers to the first one's table entries (62 = te, ..., 66 = :path),
  // as grpc-go does; the :authority comes from the table too.
  client.send(
    frame(TYPE.HEADERS, 0x4, 3, Buffer.concat([indexed(3), indexed(6), indexed(66), indexed(65), indexed(64), indexed(63), indexed(62)])),
    frame(TYPE.DATA, 0x1, 3, EMPTY_MESSAGE),
  );
  assertVersionAnswer(await client.result(3), 'second call');

  // A header block in HEADERS (padded, with priority) and CONTINUATION frames.
  const block = firstCall('/runtime.v1.RuntimeService/Version', `${d.dir}/another/socket.sock`);
  const payload = Buffer.concat([Buffer.from([4]), Buffer.from('0000000010', 'hex'), block.subarray(0, 7), Buffer.alloc(4)]);
  client.send(
    frame(TYPE.HEADERS, 0x8 | 0x20, 5, payload),
    frame(TYPE.CONTINUATION, 0, 5, block.subarray(7, 30)),
    frame(TYPE.CONTINUATION, 0x4, 5, block.subarray(30)),
    frame(TYPE.DATA, 0x1, 5, EMPTY_MESSAGE),
  );
  assertVersionAnswer(await client.result(5), 'CONTINUATION call');

  // Other services on the same connection: ImageService/ListImages answers OK.
  client.send(
    frame(
      TYPE.HEADERS,
      0x4,
      7,
      Buffer.concat([indexed(3), indexed(6), literal(4, '/runtime.v1.ImageService/ListImages'), literal(1, d.socket), indexed(66), indexed(65), indexed(64)]),
    ),
    frame(TYPE.DATA, 0x1, 7, EMPTY_MESSAGE),
  );
  const images = await client.result(7);
  assert.equal(header(images.headers.at(-1), 'grpc-status'), '0');
  assert.equal(client.goaway, undefined);
});

test('an undecodable header block ends that connection with COMPRESSION_ERROR; the daemon serves on', async (t) => {
  const d = await startDaemon({ config: 'legacy_authority = true' });
  t.after(() => d.cleanup());
  const client = new RawClient(d.socket);
  t.after(() => client.socket.destroy());
  // Index 90 is past the (empty) dynamic table.
  client.send(frame(TYPE.HEADERS, 0x4, 1, Buffer.concat([indexed(3), indexed(6), indexed(90)])));
  assert.equal(await client.closedWith(), 9);
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
});

test('SIGTERM lets a call in flight through the filter finish, then exits', async (t) => {
  const d = await startDaemon({ config: 'legacy_authority = true' });
  t.after(() => d.cleanup());
  const client = new RawClient(d.socket);
  t.after(() => client.socket.destroy());
  // The request is open: its message has not been sent yet.
  client.send(frame(TYPE.HEADERS, 0x4, 1, firstCall('/runtime.v1.RuntimeService/Version', d.socket)));
  // A first complete call proves the stream above reached the server before SIGTERM.
  client.send(
    frame(TYPE.HEADERS, 0x4, 3, Buffer.concat([indexed(3), indexed(6), indexed(66), indexed(65), indexed(64), indexed(63), indexed(62)])),
    frame(TYPE.DATA, 0x1, 3, EMPTY_MESSAGE),
  );
  assertVersionAnswer(await client.result(3), 'call before SIGTERM');
  const exited = new Promise<number | null>((resolve) => d.process.once('exit', resolve));
  d.process.kill('SIGTERM');
  while (client.goaway === undefined && !client.closed) await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.goaway, 0, 'GOAWAY NO_ERROR announces the shutdown');
  client.send(frame(TYPE.DATA, 0x1, 1, EMPTY_MESSAGE));
  assertVersionAnswer(await client.result(1), 'call in flight');
  client.socket.end();
  assert.equal(await exited, 0);
});

test('by default a call with the socket path as :authority is refused; calls with localhost on the same connection are answered', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const client = new RawClient(d.socket);
  t.after(() => client.socket.destroy());
  client.send(frame(TYPE.HEADERS, 0x4, 1, firstCall('/runtime.v1.RuntimeService/Version', d.socket)), frame(TYPE.DATA, 0x1, 1, EMPTY_MESSAGE));
  const refused = await client.result(1);
  assert.ok(refused.reset !== undefined || header(refused.headers[0], ':status') !== '200', 'the path authority is not served');
  if (!client.closed) {
    client.send(frame(TYPE.HEADERS, 0x4, 3, firstCall('/runtime.v1.RuntimeService/Version', 'localhost')), frame(TYPE.DATA, 0x1, 3, EMPTY_MESSAGE));
    assertVersionAnswer(await client.result(3), 'localhost call');
  }
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
});
