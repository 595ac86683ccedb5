import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../../src/stream/spdy/dictionary.ts';
import {
  FLAG_FIN,
  FrameType,
  MAX_CONTROL_FRAME,
  SpdyProtocolError,
  dataFrame,
  decodeHeaderBlock,
  encodeHeaderBlock,
  parseSettings,
  ping,
  readFrames,
  rstStream,
  settings,
  synReply,
  synStream,
  windowUpdate,
} from '../../../src/stream/spdy/frames.ts';
import { resizeDecoder } from '../../../src/stream/resize.ts';
import { decodeMessage, encodeMessage } from '../../../src/stream/websocket.ts';
import { errorChannelPayload } from '../../../src/stream/status.ts';
import { expectedStreams } from '../../../src/stream/remotecommand.ts';

test('the SPDY/3 dictionary has the specified size and content', () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1'), '\0\0\0\x07options');
  assert.ok(SPDY3_DICTIONARY.toString('latin1').endsWith('enq=0.'));
  assert.equal(createHash('sha256').update(SPDY3_DICTIONARY).digest('hex').length, 64);
  const block = encodeHeaderBlock({ streamtype: 'stdout', port: '80' });
  assert.deepEqual(inflateSync(deflateSync(block, { dictionary: SPDY3_DICTIONARY }), { dictionary: SPDY3_DICTIONARY }), block);
});

test('frames round-trip through the parser, including partial input', () => {
  const bytes = Buffer.concat([
    synStream(1, 0, 0, Buffer.from('hdr')),
    synReply(1, 0, Buffer.from('r')),
    dataFrame(1, FLAG_FIN, Buffer.from('payload')),
    rstStream(3, 5),
    windowUpdate(1, 1000),
    ping(7),
    settings([{ id: 7, value: 65536 }]),
  ]);
  const partial = readFrames(bytes.subarray(0, bytes.length - 3));
  assert.equal(partial.frames.length, 6);
  const { frames, rest } = readFrames(bytes);
  assert.equal(rest.length, 0);
  assert.deepEqual(
    frames.map((f) => (f.kind === 'data' ? 'data' : f.type)),
    [FrameType.SYN_STREAM, FrameType.SYN_REPLY, 'data', FrameType.RST_STREAM, FrameType.WINDOW_UPDATE, FrameType.PING, FrameType.SETTINGS],
  );
  const data = frames[2]!;
  assert.equal(data.kind, 'data');
  if (data.kind === 'data') {
    assert.equal(data.streamId, 1);
    assert.equal(data.flags, FLAG_FIN);
    assert.equal(data.data.toString(), 'payload');
  }
  const s = frames[6]!;
  if (s.kind === 'control') assert.equal(parseSettings(s.data).get(7), 65536);
});

test('an unknown SPDY version is an error', () => {
  const frame = synStream(1, 0, 0, Buffer.alloc(0));
  frame.writeUInt16BE(0x8002, 0);
  assert.throws(() => readFrames(frame), /unsupported SPDY version 2/);
});

test('a control frame beyond the limit is refused from its header alone; data frames may be large', () => {
  const header = synStream(1, 0, 0, Buffer.alloc(0)).subarray(0, 8);
  header.writeUIntBE(MAX_CONTROL_FRAME + 1, 5, 3);
  assert.throws(
    () => readFrames(header),
    (e: unknown) => e instanceof SpdyProtocolError && /exceeds the limit/.test((e as Error).message),
  );
  const big = dataFrame(1, 0, Buffer.alloc(MAX_CONTROL_FRAME + 1));
  assert.equal(readFrames(big).frames.length, 1);
});

test('a header block whose count or lengths run past its end is a protocol error', () => {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  for (const block of [
    Buffer.alloc(2),
    u32(0xffffffff),
    Buffer.concat([u32(1), u32(100), Buffer.from('abc')]),
    Buffer.concat([u32(1), u32(1), Buffer.from('a'), u32(0x7fffffff)]),
  ]) {
    assert.throws(() => decodeHeaderBlock(block), SpdyProtocolError);
  }
  assert.deepEqual(decodeHeaderBlock(u32(0)), {});
});

test('header blocks lowercase names and join repeated values with NUL', () => {
  const block = encodeHeaderBlock({ StreamType: 'error', 'X-Multi': ['a', 'b'] });
  assert.deepEqual(decodeHeaderBlock(block), { streamtype: 'error', 'x-multi': 'a\0b' });
});

test('resize messages are decoded across chunk boundaries', () => {
  const sizes: unknown[] = [];
  const feed = resizeDecoder((s) => sizes.push(s));
  feed(Buffer.from('{"Width":80,"Hei'));
  feed(Buffer.from('ght":24}\n{"Width":0,"Height":1}{"Width":120,"Height":50}'));
  assert.deepEqual(sizes, [
    { width: 80, height: 24 },
    { width: 120, height: 50 },
  ]);
});

test('WebSocket channel messages, binary and base64', () => {
  assert.deepEqual(encodeMessage('v4.channel.k8s.io', 1, Buffer.from('x')), Buffer.from([1, 120]));
  assert.equal(encodeMessage('base64.channel.k8s.io', 2, Buffer.from('hi')), '2aGk=');
  assert.deepEqual(decodeMessage('base64.channel.k8s.io', '0aGk='), { channel: 0, data: Buffer.from('hi') });
  assert.deepEqual(decodeMessage('v5.channel.k8s.io', Buffer.from([255, 0])), { channel: 255, data: Buffer.from([0]) });
});

test('the error channel speaks JSON Status from v4 and text before', () => {
  assert.equal(errorChannelPayload('v1.channel.k8s.io', 0, ['x']), undefined);
  assert.match(errorChannelPayload('channel.k8s.io', 2, ['x'])!.toString(), /exit code 2/);
  assert.equal(JSON.parse(errorChannelPayload('v5.channel.k8s.io', 0, ['x'])!.toString()).status, 'Success');
  assert.equal(JSON.parse(errorChannelPayload('v4.channel.k8s.io', undefined, [], 'boom')!.toString()).message, 'boom');
});

test('the expected streams follow the options and the protocol version', () => {
  const opts = { stdin: true, stdout: true, stderr: true, tty: false };
  assert.deepEqual(expectedStreams('v4.channel.k8s.io', opts), ['error', 'stdin', 'stdout', 'stderr']);
  assert.deepEqual(expectedStreams('v4.channel.k8s.io', { ...opts, stderr: false, tty: true }), ['error', 'stdin', 'stdout', 'resize']);
  assert.deepEqual(expectedStreams('v2.channel.k8s.io', { ...opts, stderr: false, tty: true }), ['error', 'stdin', 'stdout']);
});
