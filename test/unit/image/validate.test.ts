// Digests tscri can verify, and the type checks of manifests, indexes,
// configs and stored records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, digestProblem } from '../../../src/image/digest.ts';
import { ImageFormatError, checkConfig, checkIndex, checkManifest, checkRecord } from '../../../src/image/validate.ts';
import { parseReference } from '../../../src/image/reference.ts';

const D = digestOf('x');

test('sha256 and sha512 digests are verifiable; other algorithms and malformed ones are not', () => {
  assert.equal(digestProblem(D), undefined);
  assert.equal(digestProblem(digestOf('x', 'sha512')), undefined);
  assert.match(digestProblem(`md5:${'a'.repeat(32)}`)!, /algorithm md5, which tscri cannot verify/);
  assert.match(digestProblem(`sha256:${'A'.repeat(64)}`)!, /not a valid sha256 digest/);
  assert.match(digestProblem(`sha512:${'a'.repeat(64)}`)!, /128 lowercase hex digits/);
  for (const bad of ['', 'sha256', 'sha256:', ':abc', 'sha256:../../x', 'sha256:a/b', 'constructor:abc', 'sha256:\0']) assert.ok(digestProblem(bad), bad);
  assert.equal(parseReference(`a/b@${digestOf('x', 'sha512')}`).digest, digestOf('x', 'sha512'));
  assert.throws(() => parseReference(`a/b@md5:${'a'.repeat(32)}`), /cannot verify/);
});

const manifest = () => ({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'c', digest: D, size: 10 },
  layers: [{ mediaType: 'l', digest: D, size: 20 }],
});
const config = () => ({
  architecture: 'amd64',
  os: 'linux',
  config: { User: '1000', Env: ['A=1'], Cmd: null, Entrypoint: ['sh'], Labels: null },
  rootfs: { type: 'layers', diff_ids: [D] },
});

test('a well-formed manifest, index and config pass, nulls where Docker writes them included', () => {
  checkManifest(manifest(), 'm');
  checkIndex(
    { schemaVersion: 2, manifests: [{ mediaType: 'x', digest: D, size: 1, platform: { os: 'linux', architecture: 'amd64', 'os.version': '1' } }] },
    'i',
  );
  checkConfig(config());
});

test('each wrongly typed field is named, with what it is', () => {
  const cases: Array<[() => void, RegExp]> = [
    [() => checkConfig({ ...config(), config: { User: 1000 } }), /^image config field config\.User must be a string \(it is the number 1000\)$/],
    [() => checkConfig({ ...config(), config: { Env: [1] } }), /config\.Env\[0\] must be a string/],
    [() => checkConfig({ ...config(), rootfs: { diff_ids: 'x' } }), /rootfs\.diff_ids must be an array/],
    [() => checkConfig('x'), /\(top level\) must be an object \(it is the string "x"\)/],
    [() => checkManifest({ ...manifest(), annotations: 'x' }, 'the manifest'), /^the manifest field annotations must be an object/],
    [() => checkManifest({ ...manifest(), layers: [{ digest: D, size: -1 }] }, 'm'), /layers\[0\]\.size must be a size/],
    [() => checkManifest({ ...manifest(), config: { digest: D, size: 1.5 } }, 'm'), /config\.size must be a size/],
    [() => checkIndex({ schemaVersion: 2, manifests: [{ digest: D, size: 1, platform: { os: 7 } }] }, 'i'), /manifests\[0\]\.platform\.os must be a string/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, (e: any) => e instanceof ImageFormatError && message.test(e.message));
});

test('a record is checked field by field, its config included', () => {
  const record = {
    id: D,
    repoTags: ['a:b'],
    repoDigests: [],
    size: 1,
    config: config(),
    manifestDigest: D,
    layers: [{ digest: D, mediaType: 'l', size: 1 }],
    diffIds: [D],
    chainIds: [D],
    pinned: false,
    annotations: {},
    pulledAt: 1,
  };
  checkRecord(record, 'r');
  assert.throws(() => checkRecord({ ...record, annotations: 'x' }, 'r'), /annotations must be an object/);
  assert.throws(() => checkRecord({ ...record, config: { ...config(), config: { User: 0 } } }, 'r'), /config\.User must be a string/);
  assert.throws(() => checkRecord({ ...record, id: '../x' }, 'r'), /id is not a digest/);
});

test('a record that cannot be rendered is left out of the listing with one warning; the others are listed', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { pino } = await import('pino');
  const { ImageService } = await import('../../../src/image/service.ts');
  const { defaultConfig } = await import('../../../src/config/config.ts');
  const dir = await mkdtemp(join(tmpdir(), 'tscri-render-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
  const service = new ImageService({ ...defaultConfig(), root: dir }, log, { has: () => true } as any);
  const good = {
    id: D,
    repoTags: ['a:b'],
    repoDigests: [],
    size: 1,
    config: config(),
    manifestDigest: D,
    layers: [],
    diffIds: [],
    chainIds: [],
    pinned: false,
    annotations: {},
    pulledAt: 1,
  };
  const bad = { ...good, id: digestOf('y'), repoTags: ['c:d'], config: { ...config(), config: { User: 1000 } } };
  assert.deepEqual(
    service.render([good, bad] as any).map((i) => i.id),
    [D],
  );
  service.render([bad] as any);
  assert.equal(warnings.filter((w) => w.includes('left out of the listing')).length, 1, 'warned once');
  assert.ok(warnings[0]!.includes(bad.id));
});
