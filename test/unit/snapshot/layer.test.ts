// Layer unpacking: every tar entry type with its metadata, whiteouts, the
// three compressions, the diff id, aborts, and malicious layers that must
// fail without writing anything outside the snapshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { applyLayer, declaredCompression, entryComponents } from '../../../src/snapshot/layer.ts';
import { lgetxattr } from '../../../src/snapshot/syscalls.ts';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const MTIME = new Date(1_000_000_000_000);

type Entry = {
  name: string;
  type?: string;
  body?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  mtime?: Date;
  pax?: Record<string, string>;
  devmajor?: number;
  devminor?: number;
};

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) p.entry({ mode: e.type === 'directory' ? 0o755 : 0o644, mtime: MTIME, ...e } as any, e.body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A tar block holding a PAX extended header with raw (possibly binary) values, for the entry after it. */
function paxHeader(records: Array<[string, Buffer]>): Buffer {
  const body = Buffer.concat(
    records.map(([key, value]) => {
      const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
      let len = rest.length + 1;
      while (String(len).length + rest.length !== len) len += 1;
      return Buffer.concat([Buffer.from(String(len)), rest]);
    }),
  );
  const header = Buffer.alloc(512);
  header.write('PaxHeader', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('x', 156);
  header.write('ustar\0' + '00', 257);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([header, padded]);
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A temp dir holding a sentinel file (mode 0600) and the empty snapshot dir. */
async function dirs(t: any) {
  const top = await mkdtemp(join(tmpdir(), 'tscri-layer-'));
  t.after(() => rm(top, { recursive: true, force: true }));
  const snap = join(top, 'snap');
  await mkdir(snap);
  await writeFile(join(top, 'sentinel'), 'keep', { mode: 0o600 });
  await chmod(join(top, 'sentinel'), 0o600);
  return { top, snap };
}

/** The sentinel dir holds exactly what it held before, untouched. */
async function assertUntouched(top: string, what: string) {
  assert.deepEqual((await readdir(top)).sort(), ['sentinel', 'snap'], what);
  const info = await stat(join(top, 'sentinel'));
  assert.equal(info.mode & 0o7777, 0o600, what);
  assert.equal(info.uid, 0, what);
  assert.equal(await readFile(join(top, 'sentinel'), 'utf8'), 'keep', what);
  assert.equal(lgetxattr(join(top, 'sentinel'), 'trusted.overlay.opaque'), undefined, what);
}

test('every entry type lands with its owner, mode, times and xattrs', async (t) => {
  const { snap } = await dirs(t);
  const capability = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x80, 0xc3, 0x00]);
  const tar = await tarOf([
    { name: './', type: 'directory', mode: 0o751, mtime: new Date(5_000_000), pax: { 'SCHILY.xattr.user.root': 'r' } },
    { name: 'bin/', type: 'directory', mode: 0o755, uid: 7, gid: 8, mtime: new Date(2_000_000_000) },
    { name: 'bin/tool', body: 'binary', mode: 0o4755, uid: 1000, gid: 1001 },
    { name: 'bin/sgid', body: 's', mode: 0o2711, uid: 5, gid: 6 },
    { name: 'bin/alias', type: 'symlink', linkname: 'tool', uid: 33, gid: 34 },
    { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
    { name: 'bin/abs', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'shared/', type: 'directory', mode: 0o2775, gid: 50 },
    { name: 'ro/', type: 'directory', mode: 0o555 },
    { name: 'ro/inside', body: 'in a read-only dir', mode: 0o444 },
    { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'dev/loop0', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 300, gid: 6 },
    { name: 'run/fifo', type: 'fifo', mode: 0o620 },
    { name: 'etc/attr', body: 'x', pax: { 'SCHILY.xattr.user.note': 'héllo' } },
    { name: 'etc/overlay', body: 'x', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/elsewhere' } },
    { name: 'etc/big', body: 'y'.repeat(300_000) },
  ]);
  // A binary xattr value as Go's archive/tar writes it: raw bytes in the PAX record.
  const binary = Buffer.concat([paxHeader([['SCHILY.xattr.user.bin', capability]]), await tarOf([{ name: 'etc/cap', body: 'c' }])]);
  const layer = Buffer.concat([tar.subarray(0, tar.length - 1024), binary]);
  const result = await applyLayer(Readable.from([layer]), TAR, snap);
  assert.equal(result.diffId, sha(layer));
  assert.equal(result.size, layer.length);

  const tool = await stat(join(snap, 'bin/tool'));
  assert.equal(tool.mode & 0o7777, 0o4755);
  assert.equal(tool.uid, 1000);
  assert.equal(tool.gid, 1001);
  assert.equal(tool.mtimeMs, MTIME.getTime());
  assert.equal(await readFile(join(snap, 'bin/tool'), 'utf8'), 'binary');
  assert.equal((await stat(join(snap, 'bin/sgid'))).mode & 0o7777, 0o2711);

  const alias = await lstat(join(snap, 'bin/alias'));
  assert.ok(alias.isSymbolicLink());
  assert.equal(await readlink(join(snap, 'bin/alias')), 'tool');
  assert.equal(alias.uid, 33);
  assert.equal(alias.mtimeMs, MTIME.getTime());
  assert.equal(await readlink(join(snap, 'bin/abs')), '/etc/passwd');
  assert.equal((await stat(join(snap, 'bin/hard'))).ino, tool.ino);

  // Directories: mode, owner and mtime as in the tar although their contents were written later.
  const bin = await stat(join(snap, 'bin'));
  assert.equal(bin.mode & 0o7777, 0o755);
  assert.equal(bin.uid, 7);
  assert.equal(bin.mtimeMs, 2_000_000_000);
  const root = await stat(snap);
  assert.equal(root.mode & 0o7777, 0o751);
  assert.equal(root.mtimeMs, 5_000_000);
  assert.equal(lgetxattr(snap, 'user.root')?.toString(), 'r');
  assert.equal((await stat(join(snap, 'tmp'))).mode & 0o7777, 0o1777);
  assert.equal((await stat(join(snap, 'shared'))).mode & 0o7777, 0o2775);
  assert.equal((await stat(join(snap, 'ro'))).mode & 0o7777, 0o555);
  assert.equal(await readFile(join(snap, 'ro/inside'), 'utf8'), 'in a read-only dir');

  const nul = await lstat(join(snap, 'dev/null'));
  assert.ok(nul.isCharacterDevice());
  assert.equal(nul.rdev, (1 << 8) | 3);
  assert.equal(nul.mode & 0o7777, 0o666);
  const loop = await lstat(join(snap, 'dev/loop0'));
  assert.ok(loop.isBlockDevice());
  // glibc makedev: minor 300 = low 8 bits + the rest from bit 20.
  assert.equal(loop.rdev, (7 << 8) | (300 & 0xff) | ((300 & ~0xff) << 12));
  assert.equal(loop.gid, 6);
  const fifo = await lstat(join(snap, 'run/fifo'));
  assert.ok(fifo.isFIFO());
  assert.equal(fifo.mode & 0o7777, 0o620);

  assert.equal(lgetxattr(join(snap, 'etc/attr'), 'user.note')?.toString(), 'héllo');
  assert.deepEqual(lgetxattr(join(snap, 'etc/cap'), 'user.bin'), capability);
  assert.equal(await readFile(join(snap, 'etc/cap'), 'utf8'), 'c');
  assert.equal(lgetxattr(join(snap, 'etc/overlay'), 'trusted.overlay.redirect'), undefined);
  assert.equal((await stat(join(snap, 'etc/big'))).size, 300_000);
});

test('OCI whiteouts become overlay whiteouts and opaque directories', async (t) => {
  const { snap } = await dirs(t);
  const tar = await tarOf([
    { name: 'etc/here', body: 'replaced by the whiteout below' },
    { name: 'etc/.wh.here' },
    { name: 'etc/.wh.gone' },
    { name: 'var/cache/.wh..wh..opq' },
    { name: 'var/cache/new', body: 'n' },
    { name: '.wh..wh.plnk/123.456' },
    { name: '.wh..wh..opq' },
  ]);
  await applyLayer(Readable.from([gzipSync(tar)]), `${TAR}+gzip`, snap);
  for (const name of ['etc/gone', 'etc/here']) {
    const whiteout = await lstat(join(snap, name));
    assert.ok(whiteout.isCharacterDevice(), name);
    assert.equal(whiteout.rdev, 0, name);
  }
  assert.deepEqual((await readdir(join(snap, 'etc'))).sort(), ['gone', 'here']);
  assert.equal(lgetxattr(join(snap, 'var/cache'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.deepEqual(await readdir(join(snap, 'var/cache')), ['new']);
  assert.equal(lgetxattr(snap, 'trusted.overlay.opaque')?.toString(), 'y');
  // aufs bookkeeping is not unpacked.
  assert.deepEqual((await readdir(snap)).sort(), ['etc', 'var']);
});

test('gzip, zstd and plain layers unpack and report the uncompressed digest', async (t) => {
  const tar = await tarOf([{ name: 'a.txt', body: 'content!' }]);
  const cases: Array<[string, Buffer]> = [
    [`${TAR}+zstd`, zstdCompressSync(tar)],
    [`${TAR}+gzip`, gzipSync(tar)],
    ['application/vnd.docker.image.rootfs.diff.tar.gzip', gzipSync(tar)],
    [TAR, tar],
    // Mislabelled as plain: the magic bytes win.
    [TAR, gzipSync(tar)],
    ['', zstdCompressSync(tar)],
  ];
  for (const [type, data] of cases) {
    const { snap } = await dirs(t);
    // One byte per chunk: the format is detected across chunk boundaries.
    const bytes = Readable.from(
      (function* () {
        for (let i = 0; i < data.length; i += 1) yield data.subarray(i, i + 1);
      })(),
    );
    const result = await applyLayer(bytes, type, snap);
    assert.equal(result.diffId, sha(tar), type);
    assert.equal(result.size, tar.length, type);
    assert.equal(await readFile(join(snap, 'a.txt'), 'utf8'), 'content!', type);
  }
});

test('the empty layer has its well-known diff id', async (t) => {
  const { snap } = await dirs(t);
  const result = await applyLayer(Readable.from([gzipSync(Buffer.alloc(1024))]), 'application/vnd.docker.image.rootfs.diff.tar.gzip', snap);
  assert.deepEqual(result, { diffId: 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef', size: 1024 });
  assert.deepEqual(await readdir(snap), []);
});

test('a layer whose data does not match its declared compression is refused', async (t) => {
  const tar = await tarOf([{ name: 'x' }]);
  for (const [type, data] of [
    [`${TAR}+gzip`, tar],
    [`${TAR}+zstd`, gzipSync(tar)],
    [`${TAR}+gzip`, zstdCompressSync(tar)],
  ] as const) {
    const { snap } = await dirs(t);
    await assert.rejects(applyLayer(Readable.from([data]), type, snap), /is declared .* but its data is not/);
  }
  assert.throws(() => declaredCompression('application/vnd.oci.image.layer.v1.tar+bzip2'), /bzip2 compression, which is not supported/);
  const { snap } = await dirs(t);
  await assert.rejects(applyLayer(Readable.from([gzipSync(tar).subarray(0, 40)]), `${TAR}+gzip`, snap), /unexpected end of file/);
});

test('malicious entries fail the layer, name the entry and write nothing outside', async (t) => {
  const cases: Array<{ entries: Entry[]; error: RegExp }> = [
    { entries: [{ name: '../x', body: 'x' }], error: /layer entry "\.\.\/x" escapes the snapshot/ },
    { entries: [{ name: 'a/../../sentinel', body: 'x' }], error: /layer entry "a\/\.\.\/\.\.\/sentinel" escapes the snapshot/ },
    { entries: [{ name: '/../sentinel', body: 'x' }], error: /escapes the snapshot/ },
    // A file under a symlinked parent directory.
    {
      entries: [
        { name: 'link', type: 'symlink', linkname: '..' },
        { name: 'link/outside', body: 'x' },
      ],
      error: /layer entry "link\/outside" escapes the snapshot through the symlink link/,
    },
    {
      entries: [
        { name: 'abs', type: 'symlink', linkname: '/' },
        { name: 'abs/tmp/outside', body: 'x' },
      ],
      error: /through the symlink abs/,
    },
    // A symlink, then a file written through it (the symlink is replaced, not followed) is fine; through a deeper parent it is not.
    {
      entries: [
        { name: 'up', type: 'symlink', linkname: '..' },
        { name: 'up/sentinel', body: 'overwritten' },
      ],
      error: /through the symlink up/,
    },
    {
      entries: [
        { name: 'd/', type: 'directory' },
        { name: 'd/up', type: 'symlink', linkname: '../..' },
        { name: 'd/up/snap2/x', body: 'x' },
      ],
      error: /through the symlink d\/up/,
    },
    // A directory already used as a parent, then replaced by a symlink, then used again.
    {
      entries: [
        { name: 'd/', type: 'directory' },
        { name: 'd/x', body: 'x' },
        { name: 'd', type: 'symlink', linkname: '..' },
        { name: 'd/y', body: 'y' },
      ],
      error: /layer entry "d\/y" escapes the snapshot through the symlink d/,
    },
    {
      entries: [
        { name: 'e/f/', type: 'directory' },
        { name: 'e/f/x', body: 'x' },
        { name: 'e', type: 'symlink', linkname: '/' },
        { name: 'e/f/y', body: 'y' },
      ],
      error: /through the symlink e/,
    },
    // Hard links out of the snapshot, or through a symlink.
    { entries: [{ name: 'hard', type: 'link', linkname: '../sentinel' }], error: /layer entry "\.\.\/sentinel" escapes the snapshot/ },
    { entries: [{ name: 'hard', type: 'link', linkname: '/etc/passwd' }], error: /links to "\/etc\/passwd", which is not in the layer|not in the layer/ },
    {
      entries: [
        { name: 'l', type: 'symlink', linkname: '..' },
        { name: 'hard', type: 'link', linkname: 'l/sentinel' },
      ],
      error: /layer entry "hard" escapes the snapshot through the symlink l/,
    },
    // Whiteouts and opaque markers through a symlink.
    { entries: [{ name: 'dirlink', type: 'symlink', linkname: '..' }, { name: 'dirlink/.wh.sentinel' }], error: /through the symlink dirlink/ },
    { entries: [{ name: 'dirlink', type: 'symlink', linkname: '..' }, { name: 'dirlink/.wh..wh..opq' }], error: /through the symlink dirlink/ },
    { entries: [{ name: '.wh.' }], error: /not a valid whiteout/ },
    { entries: [{ name: '.wh...' }], error: /escapes the snapshot|not a valid whiteout/ },
  ];
  for (const { entries, error } of cases) {
    const { top, snap } = await dirs(t);
    const what = JSON.stringify(entries);
    await assert.rejects(applyLayer(Readable.from([await tarOf(entries)]), TAR, snap), error, what);
    await assertUntouched(top, what);
  }
});

test('a symlink written over a file is replaced, never followed', async (t) => {
  const { top, snap } = await dirs(t);
  const sentinel = join(top, 'sentinel');
  await applyLayer(
    Readable.from([
      await tarOf([
        { name: 'f', type: 'symlink', linkname: sentinel },
        { name: 'f', body: 'replaced', mode: 0o777 },
        { name: 'g', type: 'symlink', linkname: sentinel },
        { name: 'g', type: 'fifo' },
      ]),
    ]),
    TAR,
    snap,
  );
  assert.equal(await readFile(join(snap, 'f'), 'utf8'), 'replaced');
  assert.ok((await lstat(join(snap, 'g'))).isFIFO());
  await assertUntouched(top, 'symlink replaced');
});

test('a directory replaced by a symlink later in the layer does not get its metadata applied through it', async (t) => {
  const { top, snap } = await dirs(t);
  const sentinel = join(top, 'sentinel');
  await applyLayer(
    Readable.from([
      await tarOf([
        { name: 'd/', type: 'directory', mode: 0o777, uid: 1234 },
        { name: 'd', type: 'symlink', linkname: sentinel },
        { name: 'p/', type: 'directory' },
        { name: 'p/q/', type: 'directory', mode: 0o777, uid: 1234 },
        { name: 'p', type: 'symlink', linkname: top },
      ]),
    ]),
    TAR,
    snap,
  );
  assert.equal(await readlink(join(snap, 'd')), sentinel);
  await assertUntouched(top, 'directory replaced');
});

test('absolute and dotted entry names are taken relative to the snapshot', async (t) => {
  const { snap } = await dirs(t);
  await applyLayer(
    Readable.from([
      await tarOf([
        { name: '/etc/abs', body: 'in' },
        { name: './etc//./dot', body: 'dot' },
      ]),
    ]),
    TAR,
    snap,
  );
  assert.equal(await readFile(join(snap, 'etc/abs'), 'utf8'), 'in');
  assert.equal(await readFile(join(snap, 'etc/dot'), 'utf8'), 'dot');
  assert.deepEqual(entryComponents('./a//b/'), ['a', 'b']);
  assert.deepEqual(entryComponents('/'), []);
  assert.throws(() => entryComponents('a/../b'), /escapes the snapshot/);
});

test('an abort stops the unpack and closes the input', async (t) => {
  const { snap } = await dirs(t);
  const input = new PassThrough();
  const tar = await tarOf([{ name: 'big', body: 'z'.repeat(200_000) }]);
  input.write(tar.subarray(0, 100_000));
  const controller = new AbortController();
  const running = applyLayer(input, TAR, snap, controller.signal);
  setImmediate(() => controller.abort(new Error('pull cancelled')));
  await assert.rejects(running, (err: any) => /pull cancelled|aborted/i.test(String(err?.message) + String(err?.cause?.message)));
  assert.ok(input.destroyed);

  const already = new AbortController();
  already.abort(new Error('too late'));
  const other = Readable.from([tar]);
  await assert.rejects(applyLayer(other, TAR, snap, already.signal), /too late/);
  assert.ok(other.destroyed);
});

test('bytes after the end of the archive are ignored but count in the diff id', async (t) => {
  const tar = Buffer.concat([
    await tarOf([
      { name: 'a.txt', body: 'content' },
      { name: 'big', body: 'y'.repeat(5000) },
    ]),
    Buffer.from('trailing garbage that is not a tar header'),
  ]);
  const { snap } = await dirs(t);
  const result = await applyLayer(Readable.from([gzipSync(tar)]), `${TAR}+gzip`, snap);
  assert.equal(result.diffId, sha(tar));
  assert.equal(result.size, tar.length);
  assert.equal(await readFile(join(snap, 'a.txt'), 'utf8'), 'content');
  assert.equal((await stat(join(snap, 'big'))).size, 5000);
});

test('a layer that is not a tar fails', async (t) => {
  const { snap } = await dirs(t);
  await assert.rejects(applyLayer(Readable.from([Buffer.alloc(600, 0x41)]), TAR, snap));
});

test('user xattrs on a symlink or device, which the kernel refuses, are skipped', async (t) => {
  const { snap } = await dirs(t);
  const pax = { 'SCHILY.xattr.user.note': 'n' };
  await applyLayer(
    Readable.from([
      await tarOf([
        { name: 'target', body: 't', pax },
        { name: 'link', type: 'symlink', linkname: 'target', pax },
        { name: 'pipe', type: 'fifo', pax },
      ]),
    ]),
    TAR,
    snap,
  );
  assert.equal(lgetxattr(join(snap, 'target'), 'user.note')?.toString(), 'n');
  assert.equal(lgetxattr(join(snap, 'link'), 'user.note'), undefined);
  assert.ok((await lstat(join(snap, 'pipe'))).isFIFO());
});

test('a filesystem error names the entry that could not be written', async (t) => {
  const { top, snap } = await dirs(t);
  const long = `dir/${'n'.repeat(300)}`;
  await assert.rejects(applyLayer(Readable.from([await tarOf([{ name: long, body: 'x' }])]), TAR, snap), (err: any) => {
    assert.match(err.message, /^cannot unpack layer entry "dir\/n+"(… \(\d+ characters\))?: ENAMETOOLONG/);
    assert.equal(err.code, 'ENAMETOOLONG');
    return true;
  });
  await assertUntouched(top, 'long name');
});

test('owners and sub-second mtimes from PAX records apply', async (t) => {
  const { snap } = await dirs(t);
  const pax = (uid: string, gid: string, mtime: string) =>
    paxHeader([
      ['uid', Buffer.from(uid)],
      ['gid', Buffer.from(gid)],
      ['mtime', Buffer.from(mtime)],
    ]);
  const withoutEnd = (b: Buffer) => b.subarray(0, b.length - 1024);
  const layer = Buffer.concat([
    pax('3000000', '3000001', '1234567890.25'),
    withoutEnd(await tarOf([{ name: 'big-owner', body: 'b' }])),
    pax('4000000', '4000001', '1500000000.5'),
    await tarOf([{ name: 'd/', type: 'directory' }]),
  ]);
  await applyLayer(Readable.from([layer]), TAR, snap);
  const file = await stat(join(snap, 'big-owner'));
  assert.equal(file.uid, 3_000_000);
  assert.equal(file.gid, 3_000_001);
  assert.equal(file.mtimeMs, 1_234_567_890_250);
  const dir = await stat(join(snap, 'd'));
  assert.equal(dir.uid, 4_000_000);
  assert.equal(dir.mtimeMs, 1_500_000_000_500);
});
