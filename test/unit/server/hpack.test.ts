// HPACK decoding and literal encoding: RFC 7541 examples, Huffman strings,
// dynamic table eviction and size updates, malformed blocks, and header
// blocks produced by nghttp2 (Node's HTTP/2 client) as an independent encoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { createServer } from 'node:net';
import {
  encodeLiterals,
  HpackDecoder,
  HpackError,
  huffmanDecode,
  huffmanEncode,
  readInteger,
  writeInteger,
  type HeaderField,
} from '../../../src/server/hpack.ts';
import { HUFFMAN } from '../../../src/server/hpack-huffman.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const plain = (fields: HeaderField[]) => fields.map((f) => [f.name, f.value]);

test('integers with N-bit prefixes (RFC 7541 C.1) round-trip', () => {
  assert.deepEqual(writeInteger(10, 5, 0), hex('0a'));
  assert.deepEqual(writeInteger(1337, 5, 0), hex('1f9a0a'));
  assert.deepEqual(writeInteger(42, 8, 0), hex('2a'));
  assert.deepEqual(readInteger(hex('1f9a0a'), 0, 5), [1337, 3]);
  for (const prefix of [4, 5, 6, 7]) {
    for (const value of [0, 1, 14, 15, 16, 62, 63, 64, 126, 127, 128, 255, 4096, 16384, 2 ** 31]) {
      const bytes = writeInteger(value, prefix, 0);
      assert.deepEqual(readInteger(bytes, 0, prefix), [value, bytes.length], `${value}/${prefix}`);
    }
  }
  assert.throws(() => readInteger(hex('1f9a'), 0, 5), HpackError);
  assert.throws(() => readInteger(hex('1fffffffffff7f'), 0, 5), HpackError);
});

test('the Huffman code is a complete prefix code and decodes the RFC example', () => {
  assert.equal(HUFFMAN.length, 256);
  // Kraft sum over the 256 symbols and EOS (30 bits) is exactly 1.
  const kraft = HUFFMAN.reduce((sum, { length }) => sum + 2 ** -length, 2 ** -30);
  assert.equal(kraft, 1);
  assert.equal(huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ff')).toString(), 'www.example.com');
  assert.deepEqual(huffmanEncode(Buffer.from('www.example.com')), hex('f1e3c2e5f23a6ba0ab90f4ff'));
  assert.equal(huffmanDecode(hex('a8eb10649cbf')).toString(), 'no-cache');
  assert.equal(huffmanDecode(Buffer.alloc(0)).length, 0);
});

test('every byte value survives Huffman coding', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(huffmanDecode(huffmanEncode(all)), all);
  for (let i = 0; i < 256; i++) {
    const one = Buffer.from([i, 255 - i, i]);
    assert.deepEqual(huffmanDecode(huffmanEncode(one)), one);
  }
});

test('Huffman strings with bad padding or EOS are refused', () => {
  // "a" is 00011 (5 bits): padding with zeros instead of ones.
  assert.throws(() => huffmanDecode(Buffer.from([0b00011000])), HpackError);
  assert.equal(huffmanDecode(Buffer.from([0b00011111])).toString(), 'a');
  // A whole byte of padding (8 bits of ones) is more than 7 bits.
  assert.throws(() => huffmanDecode(Buffer.from([0b00011111, 0xff])), HpackError);
  // EOS itself (30 ones) in the string.
  assert.throws(() => huffmanDecode(hex('ffffffff')), HpackError);
});

test('RFC 7541 C.3: requests without Huffman share the dynamic table', () => {
  const d = new HpackDecoder();
  assert.deepEqual(plain(d.decode(hex('828684410f7777772e6578616d706c652e636f6d'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  assert.equal(d.tableSize, 57);
  assert.deepEqual(plain(d.decode(hex('828684be58086e6f2d6361636865'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  assert.equal(d.tableSize, 110);
  assert.deepEqual(plain(d.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'))), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
  assert.equal(d.tableSize, 164);
  assert.equal(d.tableLength, 3);
});

test('RFC 7541 C.4: the same requests with Huffman', () => {
  const d = new HpackDecoder();
  assert.deepEqual(plain(d.decode(hex('828684418cf1e3c2e5f23a6ba0ab90f4ff')))[3], [':authority', 'www.example.com']);
  assert.deepEqual(plain(d.decode(hex('828684be5886a8eb10649cbf')))[4], ['cache-control', 'no-cache']);
  assert.deepEqual(plain(d.decode(hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf')))[4], ['custom-key', 'custom-value']);
  assert.equal(d.tableSize, 164);
});

test('entries are evicted oldest first; size updates shrink the table', () => {
  const literal = (name: string, value: string) =>
    Buffer.concat([Buffer.from([0x40]), writeInteger(name.length, 7, 0), Buffer.from(name), writeInteger(value.length, 7, 0), Buffer.from(value)]);
  // Each entry is 1 + 9 + 32 = 42 bytes; a 100-byte table holds two.
  const d = new HpackDecoder({ limit: 100 });
  d.decode(Buffer.concat([literal('a', 'value-one'), literal('b', 'value-two'), literal('c', 'value-thr')]));
  assert.equal(d.tableLength, 2);
  assert.deepEqual(plain(d.decode(hex('bebf'))), [
    ['c', 'value-thr'],
    ['b', 'value-two'],
  ]);
  assert.throws(() => d.decode(hex('c0')), HpackError);
  // Shrinking to 50 keeps only the newest entry; 0 empties the table.
  d.decode(writeInteger(50, 5, 0x20));
  assert.equal(d.tableLength, 1);
  assert.deepEqual(plain(d.decode(hex('be'))), [['c', 'value-thr']]);
  d.decode(Buffer.concat([writeInteger(0, 5, 0x20), writeInteger(100, 5, 0x20)]));
  assert.equal(d.tableLength, 0);
  // An entry larger than the whole table empties it and is not added.
  d.decode(literal('big', 'x'.repeat(80)));
  assert.equal(d.tableLength, 0);
  assert.throws(() => d.decode(writeInteger(101, 5, 0x20)), HpackError);
});

test('malformed blocks are decoding errors', () => {
  const d = new HpackDecoder();
  assert.throws(() => d.decode(hex('80')), /index 0/);
  assert.throws(() => d.decode(hex('be')), /past the dynamic table/);
  assert.throws(() => d.decode(hex('8220')), /after a header field/);
  assert.throws(() => d.decode(hex('4105616263')), /inside a string/);
  assert.throws(() => d.decode(hex('0085')), HpackError);
  // A few bytes of references may not expand past the list size limit.
  const small = new HpackDecoder({ maxListSize: 1000 });
  small.decode(Buffer.concat([hex('40'), writeInteger(1, 7, 0), Buffer.from('k'), writeInteger(500, 7, 0), Buffer.alloc(500, 0x61)]));
  assert.throws(() => small.decode(hex('bebe')), /header list larger/);
});

test('literals without indexing decode to the same fields and leave the table empty', () => {
  const fields: HeaderField[] = [
    { name: ':method', value: 'POST', sensitive: false },
    { name: ':authority', value: 'localhost', sensitive: false },
    { name: 'user-agent', value: 'grpc-go/1.51.0', sensitive: false },
    { name: 'x-secret', value: 'token', sensitive: true },
    { name: 'bin-bin', value: '\u0000\u00ff\u0080', sensitive: false },
    { name: 'empty', value: '', sensitive: false },
  ];
  const encoded = encodeLiterals(fields);
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(encoded), fields);
  assert.equal(d.tableLength, 0);
  // Names from the static table go by index: ":method" is 0x02 "without indexing".
  assert.equal(encoded[0], 0x02);
});

/** Header blocks Node's HTTP/2 client (nghttp2) sends for the given requests. */
async function nghttp2Blocks(requests: Array<Record<string, string>>, shrinkTableAfter: number): Promise<{ blocks: Buffer[]; continuations: number }> {
  const blocks: Buffer[] = [];
  let continuations = 0;
  let received = Buffer.alloc(0);
  let offset = 24;
  let block: Buffer[] = [];
  let served = 0;
  const server = createServer((socket) => {
    socket.write(hex('000000040000000000'));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      while (received.length - offset >= 9) {
        const length = received.readUIntBE(offset, 3);
        if (received.length - offset < 9 + length) break;
        const [type, flags] = [received[offset + 3]!, received[offset + 4]!];
        const payload = received.subarray(offset + 9, offset + 9 + length);
        offset += 9 + length;
        if (type === 4 && !(flags & 1)) socket.write(hex('000000040100000000'));
        if (type === 9) continuations += 1;
        if (type === 1 || type === 9) {
          block.push(payload);
          if (flags & 4) {
            blocks.push(Buffer.concat(block));
            block = [];
            // Answer each request with an empty 200 (":status: 200" is static index 8).
            const stream = received.readUInt32BE(offset - 9 - length + 5);
            const response = Buffer.concat([hex('000001'), hex('0105'), Buffer.from([0, 0, 0, 0]), hex('88')]);
            response.writeUInt32BE(stream, 5);
            socket.write(response);
            served += 1;
            if (served === shrinkTableAfter) {
              // SETTINGS_HEADER_TABLE_SIZE = 256: the client must send a size update.
              socket.write(hex('000006040000000000 0001 00000100'));
            }
          }
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const client = connect(`http://127.0.0.1:${port}`);
  try {
    for (const headers of requests) {
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
  return { blocks, continuations };
}

test('header blocks from nghttp2 (indexing, Huffman, eviction, size update, CONTINUATION) decode to what was sent', async () => {
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))
    .join('')
    .trim();
  const requests: Array<Record<string, string>> = [];
  for (let i = 0; i < 12; i++) {
    requests.push({
      ':method': 'POST',
      ':path': `/runtime.v1.RuntimeService/Call${i % 3}`,
      'content-type': 'application/grpc',
      'x-printable': printable,
      'x-counter': `value-${i}-${'z'.repeat(i * 37)}`,
      ...(i === 7 ? { 'x-large': 'L'.repeat(40_000) } : {}),
    });
  }
  const { blocks, continuations } = await nghttp2Blocks(requests, 5);
  assert.ok(continuations > 0, 'the large request came in CONTINUATION frames');
  assert.equal(blocks.length, requests.length);
  const d = new HpackDecoder();
  let sawSizeUpdate = false;
  blocks.forEach((block, i) => {
    if ((block[0]! & 0xe0) === 0x20) sawSizeUpdate = true;
    const fields = d.decode(block);
    const got = Object.fromEntries(fields.map((f) => [f.name, f.value]));
    const sent = requests[i]!;
    for (const [name, value] of Object.entries(sent)) assert.equal(got[name], value, `request ${i} ${name}`);
    assert.equal(got[':scheme'], 'http');
    assert.match(got[':authority']!, /^127\.0\.0\.1:\d+$/);
  });
  assert.ok(sawSizeUpdate, 'nghttp2 sent a table size update');
  assert.ok(d.tableSize <= 256);
});
