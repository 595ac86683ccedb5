// The client-to-server HTTP/2 filter that replaces a socket path :authority:
// header blocks as grpc-go and nghttp2 encode them (indexing, Huffman,
// dynamic table references, size updates, CONTINUATION, padding, priority),
// pass-through of other frames, and protocol errors left to the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { createServer } from 'node:net';
import { AuthorityFilter, fixAuthority, headerFrames, validAuthority } from '../../../src/server/authority.ts';
import { HpackDecoder, huffmanEncode, writeInteger, type HeaderField } from '../../../src/server/hpack.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const SETTINGS = Buffer.from('000000040000000000', 'hex');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

function str(text: string, huffman: boolean): Buffer {
  const raw = huffman ? huffmanEncode(Buffer.from(text, 'latin1')) : Buffer.from(text, 'latin1');
  return Buffer.concat([writeInteger(raw.length, 7, huffman ? 0x80 : 0), raw]);
}

type Mode = 'incremental' | 'without' | 'never';
const PREFIX: Record<Mode, [number, number]> = { incremental: [6, 0x40], without: [4, 0x00], never: [4, 0x10] };

/** A literal field: name by table index or as a string. */
function literal(name: number | string, value: string, mode: Mode = 'incremental', huffman = true): Buffer {
  const [bits, flags] = PREFIX[mode];
  const head = typeof name === 'number' ? writeInteger(name, bits, flags) : Buffer.concat([Buffer.from([flags]), str(name, huffman)]);
  return Buffer.concat([head, str(value, huffman)]);
}
const indexed = (index: number) => writeInteger(index, 7, 0x80);

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function parseFrames(bytes: Buffer): Frame[] {
  assert.deepEqual(bytes.subarray(0, 24), PREFACE);
  const frames: Frame[] = [];
  for (let off = 24; off < bytes.length; ) {
    const length = bytes.readUIntBE(off, 3);
    frames.push({ type: bytes[off + 3]!, flags: bytes[off + 4]!, stream: bytes.readUInt32BE(off + 5), payload: bytes.subarray(off + 9, off + 9 + length) });
    off += 9 + length;
  }
  return frames;
}

/** Feeds bytes in chunks of the given size; returns everything the filter let out. */
function run(input: Buffer, chunk = input.length, filter = new AuthorityFilter()): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) out.push(...filter.write(input.subarray(i, i + chunk)));
  out.push(...filter.end());
  return Buffer.concat(out);
}

/** What the server decodes from the filtered bytes, one header list per block; its table must stay empty. */
function serverView(bytes: Buffer): Array<{ stream: number; flags: number; headers: HeaderField[] }> {
  const decoder = new HpackDecoder();
  const blocks: Array<{ stream: number; flags: number; headers: HeaderField[] }> = [];
  let open: { stream: number; flags: number; parts: Buffer[] } | undefined;
  for (const f of parseFrames(bytes)) {
    if (f.type === 1) {
      assert.equal(open, undefined);
      assert.equal(f.flags & 0x8, 0, 'no padding');
      open = { stream: f.stream, flags: f.flags, parts: [f.flags & 0x20 ? f.payload.subarray(5) : f.payload] };
    } else if (f.type === 9) {
      assert.equal(f.stream, open!.stream);
      open!.parts.push(f.payload);
    } else continue;
    assert.ok(f.payload.length <= 16384);
    if (f.flags & 0x4) {
      blocks.push({ stream: open!.stream, flags: open!.flags, headers: decoder.decode(Buffer.concat(open!.parts)) });
      open = undefined;
    }
  }
  assert.equal(decoder.tableLength, 0, 'the server dynamic table is never used');
  return blocks;
}

const get = (headers: HeaderField[], name: string) => headers.filter((h) => h.name === name).map((h) => h.value);

test('valid authorities are host[:port]', () => {
  for (const ok of ['localhost', 'localhost:123', '10.0.0.1:80', '[::1]:5', '[fe80::1]', 'x-y.z', 'a%20b', 'h:']) assert.ok(validAuthority(ok), ok);
  for (const bad of ['/run/tscri/tscri.sock', 'a/b', 'a b', '', 'a:b', 'user@host', '[::1', '%zz', 'a\u00e9']) assert.ok(!validAuthority(bad), bad);
  const fields: HeaderField[] = [
    { name: ':authority', value: '/x.sock', sensitive: false },
    { name: 'host', value: 'a/b', sensitive: false },
    { name: ':path', value: '/a/b', sensitive: false },
  ];
  assert.equal(fixAuthority(fields), 2);
  assert.deepEqual(
    fields.map((f) => f.value),
    ['localhost', 'localhost', '/a/b'],
  );
});

// The first two calls of crictl 1.26 (grpc-go 1.51) as captured on the wire:
// the second refers to the first one's dynamic table entries.
const GRPC_GO_FIRST = Buffer.from(
  '8386459962cb6a49a92afdc2bedb6a49a92ee2d9dcc42b1c4b620c7abf418e6134d6c0ed4ce16083ad741c9d7f5f8b1d75d0620d263d4c4d65647a8a9acac8b4c7602bb615c140027465864d833505b11f408e9acac8b0c842d6958b510f21aa9b839bd9ab40899acac8b24d494f6a7f860befb8d361b7',
  'hex',
);
const GRPC_GO_SECOND = Buffer.from('8386c4c3c2c1c0bf7e860befbefba2b7', 'hex');

test('grpc-go calls with a socket path :authority reach the server with localhost, other fields intact', () => {
  const input = Buffer.concat([
    PREFACE,
    SETTINGS,
    frame(1, 0x4, 1, GRPC_GO_FIRST),
    frame(0, 0x1, 1, Buffer.from('0000000000', 'hex')),
    frame(1, 0x4, 3, GRPC_GO_SECOND),
    frame(0, 0x1, 3, Buffer.from('00000000040a027631', 'hex')),
  ]);
  const filter = new AuthorityFilter();
  const output = run(input, input.length, filter);
  assert.equal(filter.replaced, 2);
  const blocks = serverView(output);
  assert.equal(blocks.length, 2);
  for (const { headers } of blocks) {
    assert.deepEqual(get(headers, ':authority'), ['localhost']);
    assert.deepEqual(get(headers, ':path'), ['/runtime.v1.RuntimeService/Version']);
    assert.deepEqual(get(headers, 'user-agent'), ['grpc-go/1.51.0']);
    assert.deepEqual(get(headers, 'te'), ['trailers']);
    assert.equal(headers.length, 9);
  }
  assert.match(get(blocks[1]!.headers, 'grpc-timeout')[0]!, /^\d+u$/);
  // Non-header frames are byte for byte the same.
  const data = parseFrames(output).filter((f) => f.type !== 1);
  assert.deepEqual(
    data,
    parseFrames(input).filter((f) => f.type !== 1),
  );
  // Fed one byte at a time, the output is the same.
  assert.deepEqual(run(input, 1), output);
});

test('valid authorities are kept; literal names, never-indexed fields and dynamic name references are handled', () => {
  const input = Buffer.concat([
    PREFACE,
    // Literal name ":authority", never indexed, not Huffman.
    frame(1, 0x5, 1, Buffer.concat([indexed(3), indexed(7), literal(4, '/a'), literal(':authority', '/run/a.sock', 'never', false)])),
    // Valid authority, inserted into the table as entry 62.
    frame(1, 0x5, 3, Buffer.concat([indexed(3), literal(1, 'node-1:10250'), literal('x-token', 'secret', 'never')])),
    // :authority by reference to the dynamic entry's name (index 62), with a path value.
    frame(1, 0x5, 5, Buffer.concat([indexed(3), literal(62, '/var/run/x.sock', 'without')])),
    // And the valid entry by full reference.
    frame(1, 0x5, 7, Buffer.concat([indexed(3), indexed(62)])),
  ]);
  const blocks = serverView(run(input));
  assert.deepEqual(
    blocks.map((b) => get(b.headers, ':authority')),
    [['localhost'], ['node-1:10250'], ['localhost'], ['node-1:10250']],
  );
  assert.deepEqual(
    blocks[1]!.headers.find((h) => h.name === 'x-token'),
    { name: 'x-token', value: 'secret', sensitive: true },
  );
  assert.equal(blocks[0]!.headers.find((h) => h.name === ':authority')!.sensitive, true);
  for (const b of blocks) assert.equal(b.flags, 0x5, 'END_STREAM and END_HEADERS kept');
});

test('table size updates are followed', () => {
  const input = Buffer.concat([
    PREFACE,
    frame(1, 0x4, 1, Buffer.concat([indexed(3), literal(1, '/a.sock'), literal('x-one', '1')])),
    // Shrink to 0 (empties the table) and back; then insert and refer to the new entry.
    frame(1, 0x4, 3, Buffer.concat([writeInteger(0, 5, 0x20), writeInteger(4096, 5, 0x20), indexed(3), literal(1, '/b.sock'), indexed(62)])),
  ]);
  const blocks = serverView(run(input));
  assert.deepEqual(get(blocks[1]!.headers, ':authority'), ['localhost', 'localhost']);
  assert.deepEqual(get(blocks[1]!.headers, 'x-one'), []);
});

test('HEADERS with padding, priority and CONTINUATION frames become one unpadded block with the priority kept', () => {
  const block = Buffer.concat([
    indexed(3),
    indexed(6),
    literal(4, '/runtime.v1.RuntimeService/Version'),
    literal(1, '/run/tscri/tscri.sock'),
    literal('te', 'trailers'),
  ]);
  const priority = Buffer.from('8000000310', 'hex');
  const [a, b, c] = [block.subarray(0, 5), block.subarray(5, 20), block.subarray(20)];
  const input = Buffer.concat([
    PREFACE,
    frame(1, 0x1 | 0x8 | 0x20, 1, Buffer.concat([Buffer.from([3]), priority, a, Buffer.alloc(3)])),
    frame(9, 0, 1, b),
    frame(9, 0x4, 1, c),
    frame(8, 0, 1, Buffer.from('00001000', 'hex')),
  ]);
  const output = run(input, 3);
  const frames = parseFrames(output);
  assert.deepEqual(
    frames.map((f) => [f.type, f.flags]),
    [
      [1, 0x1 | 0x4 | 0x20],
      [8, 0],
    ],
  );
  assert.deepEqual(frames[0]!.payload.subarray(0, 5), priority);
  const [view] = serverView(output);
  assert.deepEqual(get(view!.headers, ':authority'), ['localhost']);
  assert.deepEqual(get(view!.headers, 'te'), ['trailers']);
});

test('a block larger than one frame is split into CONTINUATION frames', () => {
  const big = 'v'.repeat(20_000);
  const block = Buffer.concat([indexed(3), literal(1, '/a.sock'), literal('x-big', big), literal('x-big2', big)]);
  const input = Buffer.concat([
    PREFACE,
    frame(1, 0, 1, block.subarray(0, 10_000)),
    frame(9, 0, 1, block.subarray(10_000, 20_000)),
    frame(9, 0x4, 1, block.subarray(20_000)),
  ]);
  const output = run(input, 4096);
  const frames = parseFrames(output);
  assert.deepEqual(
    frames.map((f) => f.type),
    [1, 9, 9],
  );
  assert.deepEqual(
    frames.map((f) => f.flags),
    [0, 0, 0x4],
  );
  assert.equal(frames[0]!.payload.length, 16384);
  const [view] = serverView(output);
  assert.deepEqual(get(view!.headers, 'x-big'), [big]);
  assert.deepEqual(get(view!.headers, ':authority'), ['localhost']);
  // A HEADERS frame with PRIORITY leaves room for its 5 bytes.
  const split = parseFrames(Buffer.concat([PREFACE, ...headerFrames(1, true, Buffer.alloc(5), Buffer.alloc(16384))]));
  assert.deepEqual(
    split.map((f) => [f.type, f.flags, f.payload.length]),
    [
      [1, 0x21, 16384],
      [9, 0x4, 5],
    ],
  );
});

test('other frames pass through as they arrive, before the frame is complete', () => {
  const filter = new AuthorityFilter();
  const payload = Buffer.alloc(10_000, 7);
  const data = frame(0, 0, 1, payload);
  const first = Buffer.concat(filter.write(Buffer.concat([PREFACE, SETTINGS, data.subarray(0, 4000)])));
  assert.deepEqual(first, Buffer.concat([PREFACE, SETTINGS, data.subarray(0, 4000)]));
  const rest = Buffer.concat(filter.write(data.subarray(4000)));
  assert.deepEqual(rest, data.subarray(4000));
  // An unknown frame type is passed as well.
  const unknown = frame(0xfa, 0x4, 1, Buffer.from('whatever'));
  assert.deepEqual(Buffer.concat(filter.write(unknown)), unknown);
});

test('protocol errors are left for the server to see: bytes forwarded as sent', () => {
  // CONTINUATION without HEADERS.
  const stray = Buffer.concat([PREFACE, frame(9, 0x4, 1, literal(1, '/a.sock')), frame(0, 0, 1, Buffer.from('x'))]);
  assert.deepEqual(run(stray), stray);
  // Another frame inside a header block.
  const interleaved = Buffer.concat([PREFACE, frame(1, 0, 1, literal(1, '/a.sock')), frame(0, 0, 1, Buffer.from('x')), frame(9, 0x4, 1, Buffer.alloc(0))]);
  assert.deepEqual(run(interleaved, 5), interleaved);
  // A header frame larger than the server's frame size.
  const huge = Buffer.concat([PREFACE, frame(1, 0x4, 1, Buffer.alloc(20_000))]);
  assert.deepEqual(run(huge, 1000), huge);
  // Padding longer than the frame.
  const padded = Buffer.concat([PREFACE, frame(1, 0xc, 1, Buffer.from([9, 0x82]))]);
  assert.deepEqual(run(padded), padded);
  // Not HTTP/2 at all.
  const http1 = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual(run(http1, 2), http1);
  // A connection cut inside a header block.
  const cut = Buffer.concat([PREFACE, frame(1, 0, 1, literal(1, '/a.sock')), Buffer.from('0000', 'hex')]);
  assert.deepEqual(run(cut), cut);
});

test('an undecodable header block reaches the server as one it refuses with COMPRESSION_ERROR', () => {
  const input = Buffer.concat([PREFACE, frame(1, 0x4, 1, Buffer.concat([indexed(3), indexed(70)])), frame(0, 0x1, 1, Buffer.from('0000000000', 'hex'))]);
  const frames = parseFrames(run(input));
  assert.deepEqual(frames[0], { type: 1, flags: 0x4, stream: 1, payload: Buffer.from([0x80]) });
  assert.throws(() => new HpackDecoder().decode(frames[0]!.payload));
  assert.deepEqual(frames[1]!.payload, Buffer.from('0000000000', 'hex'));
});

test("requests of Node's HTTP/2 client pass the filter with their headers unchanged", async () => {
  const received: Buffer[] = [];
  const sent: Array<Record<string, string>> = [];
  const server = createServer((socket) => {
    const filter = new AuthorityFilter();
    socket.write(SETTINGS);
    let acked = false;
    socket.on('data', (chunk) => {
      received.push(...filter.write(chunk));
      if (!acked) {
        socket.write(Buffer.from('000000040100000000', 'hex'));
        acked = true;
      }
      // Answer every complete request: ":status: 200", END_STREAM.
      const bytes = Buffer.concat(received);
      if (bytes.length > 24) {
        for (const f of parseFrames(bytes)) {
          if (f.type === 1 && f.flags & 0x4 && !answered.has(f.stream)) {
            answered.add(f.stream);
            socket.write(frame(1, 0x5, f.stream, Buffer.from([0x88])));
          }
        }
      }
    });
  });
  const answered = new Set<number>();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const client = connect(`http://127.0.0.1:${port}`);
  try {
    for (let i = 0; i < 20; i++) {
      const headers = { ':method': 'POST', ':path': `/svc/M${i % 4}`, 'x-n': String(i), 'x-pad': 'p'.repeat(i * 300), 'grpc-timeout': `${1000 + i}m` };
      sent.push(headers);
      await new Promise<void>((resolve, reject) => {
        const req = client.request(headers, { endStream: true });
        req.on('response', () => resolve());
        req.on('error', reject);
        req.resume();
      });
    }
  } finally {
    client.close();
    server.close();
  }
  const blocks = serverView(Buffer.concat(received));
  assert.equal(blocks.length, sent.length);
  blocks.forEach(({ headers }, i) => {
    for (const [name, value] of Object.entries(sent[i]!)) assert.deepEqual(get(headers, name), [value], `${i} ${name}`);
    assert.deepEqual(get(headers, ':authority'), [`127.0.0.1:${port}`]);
  });
});
