// TarEnd: the archive passes through up to its end marker, the rest is
// dropped, and framing agrees with tar-stream for PAX, long names and
// directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { TarEnd, headerNumber, isZeroBlock, paxRecords } from '../../../src/snapshot/tar-end.ts';

async function tarOf(entries: Array<{ name: string; body?: string; type?: string; pax?: Record<string, string> }>): Promise<Buffer> {
  const p = pack();
  for (const e of entries) p.entry({ mode: 0o644, ...e } as any, e.body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function through(data: Buffer, chunkSize: number): Promise<{ out: Buffer; trailing: number }> {
  const end = new TarEnd();
  const chunks: Buffer[] = [];
  const pieces = function* () {
    for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
  };
  await pipeline(Readable.from(pieces()), end, async (source: AsyncIterable<unknown>) => {
    for await (const c of source) chunks.push(c as Buffer);
  });
  return { out: Buffer.concat(chunks), trailing: end.trailing };
}

test('numeric fields: octal, space or NUL terminated, and base-256', () => {
  assert.equal(headerNumber(Buffer.from('00000001750\0')), 1000);
  assert.equal(headerNumber(Buffer.from(' 1750 \0\0\0\0\0\0')), 1000);
  assert.equal(headerNumber(Buffer.alloc(12)), 0);
  const big = Buffer.alloc(12);
  big[0] = 0x80;
  big.writeUIntBE(2 ** 40, 6, 6);
  assert.equal(headerNumber(big), 2 ** 40);
});

test('PAX records parse until the first malformed one', () => {
  assert.deepEqual(paxRecords(Buffer.from('12 size=100\n15 path=a/b/cd\n')), { size: '100', path: 'a/b/cd' });
  assert.deepEqual(paxRecords(Buffer.from('12 size=100\nxx')), { size: '100' });
});

test('a zero block ignores its checksum field', () => {
  const block = Buffer.alloc(512);
  assert.ok(isZeroBlock(block));
  block.fill(0x20, 148, 156);
  assert.ok(isZeroBlock(block));
  block[0] = 1;
  assert.ok(!isZeroBlock(block));
});

test('bytes after the end marker are dropped, whatever the chunking', async () => {
  const entries = [
    { name: 'dir/', type: 'directory' },
    { name: 'a.txt', body: 'x'.repeat(1000) },
    { name: 'empty' },
    { name: 'l'.repeat(150) + '/long-name.txt', body: 'long' },
    { name: 'pax.txt', body: 'paxed', pax: { comment: 'hello' } },
    { name: 'zeros', body: '\0'.repeat(2048) },
  ];
  const tar = await tarOf(entries);
  const garbage = Buffer.alloc(700, 0x41);
  for (const chunk of [1, 7, 512, 100_000]) {
    const { out, trailing } = await through(Buffer.concat([tar, garbage]), chunk);
    // tar-stream pads the archive past the marker with zeros: those go too.
    const end = tarEnd(tar);
    assert.deepEqual(out, tar.subarray(0, end), `chunk ${chunk}`);
    assert.equal(trailing, tar.length - end + garbage.length, `chunk ${chunk}`);
  }
});

test('an archive without an end marker passes whole', async () => {
  const tar = await tarOf([{ name: 'a', body: 'abc' }]);
  const cut = tar.subarray(0, 1024);
  assert.deepEqual((await through(cut, 100)).out, cut);
});

/** Offset just after the first two consecutive zero header blocks, found by walking the headers. */
function tarEnd(tar: Buffer): number {
  let offset = 0;
  let zeros = 0;
  let paxSize: number | undefined;
  while (offset < tar.length) {
    const block = tar.subarray(offset, offset + 512);
    offset += 512;
    if (block.every((b) => b === 0)) {
      if (++zeros === 2) return offset;
      continue;
    }
    zeros = 0;
    let size = parseInt(block.subarray(124, 136).toString('latin1'), 8);
    if (paxSize !== undefined) size = paxSize;
    paxSize = undefined;
    const type = String.fromCharCode(block[156]!);
    if (type === 'x') {
      const records = paxRecords(tar.subarray(offset, offset + size));
      if (records.size) paxSize = Number(records.size);
    }
    if (type !== '5') offset += Math.ceil(size / 512) * 512;
  }
  return tar.length;
}
