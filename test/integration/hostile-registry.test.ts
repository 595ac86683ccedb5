// A hostile or broken registry against the daemon's socket: endless and
// oversized bodies, stalls, rate limits, wrong digests, wrongly typed
// documents, credentials a mirror asks for. Each answer is a precise status;
// the daemon's memory stays bounded, nothing is written outside its root,
// and it serves on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { FakeRegistry, sha256 } from '../helpers/fake-registry.ts';

let d: TestDaemon;
let reg: FakeRegistry;

const DEADLINE_SECONDS = 2;

before(async () => {
  reg = await new FakeRegistry().start();
  d = await startDaemon({ config: `[image]\nprogress_deadline_seconds = ${DEADLINE_SECONDS}\n` });
});

after(async () => {
  await d?.cleanup();
  await reg?.stop();
});

const files = [
  [
    { name: 'etc/', type: 'directory' as const },
    { name: 'etc/hello', body: 'hello\n' },
  ],
];
const MiB = 1024 * 1024;

/** The daemon's peak resident memory so far, in bytes. */
function peakMemory(): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${d.process.pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** The daemon still answers, and no blob or snapshot of a failed pull is left. */
async function servesOn(): Promise<void> {
  assert.ok((await d.call('Version', {})).runtime_name);
  const blobs = await readdir(join(d.root, 'content', 'blobs', 'sha256'));
  assert.deepEqual(
    blobs.filter((b) => b.includes('.tmp-')),
    [],
  );
}

const pull = (ref: string, auth?: object) => d.call('PullImage', { image: { image: `${reg.host}/${ref}` }, ...(auth ? { auth } : {}) });
const fails = (code: status, pattern: RegExp) => (e: any) => {
  assert.equal(e.code, code, `${status[e.code]}: ${e.details}`);
  assert.match(e.details, pattern);
  assert.ok(e.details.length < 1000, `a short message: ${e.details.length} characters`);
  return true;
};

test('an endless manifest is cut at 4 MiB: RESOURCE_EXHAUSTED, bounded memory', async () => {
  reg.sent = 0;
  reg.hook = (req, res, f) =>
    req.url?.includes('/manifests/') ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }), true) : false;
  await assert.rejects(pull('limits/endless:v1'), fails(status.RESOURCE_EXHAUSTED, /manifest v1 .*larger than 4 MiB/));
  assert.ok(reg.sent < 64 * MiB, `the daemon stopped reading (${reg.sent} bytes sent)`);
  assert.ok(peakMemory() < 400 * MiB, `peak memory ${peakMemory()}`);
  await servesOn();
});

test('a manifest declaring a huge length is refused before its body is read', async () => {
  reg.sent = 0;
  reg.hook = (req, res, f) =>
    req.url?.includes('/manifests/')
      ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(10 * 1024 * MiB) }), true)
      : false;
  await assert.rejects(pull('limits/declared:v1'), fails(status.RESOURCE_EXHAUSTED, /manifest v1 .*larger than 4 MiB/));
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('an endless index child is cut at 4 MiB too', async () => {
  const child = sha256('never served in full');
  reg.addIndex('limits/index', 'v1', [{ digest: child, size: 1000 }]);
  reg.sent = 0;
  reg.hook = (req, res, f) =>
    req.url?.endsWith(`/manifests/${child}`) ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }), true) : false;
  await assert.rejects(pull('limits/index:v1'), (e: any) => [status.RESOURCE_EXHAUSTED, status.DATA_LOSS].includes(e.code) && e.details.includes(child));
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('a config larger than 8 MiB is refused before it is fetched; an endless one stops at its declared size', async () => {
  const img = await reg.addImage('limits/config', 'v1', files, { editManifest: (m) => (m.config.size = 300 * MiB) });
  reg.hook = undefined;
  await assert.rejects(pull('limits/config:v1'), fails(status.RESOURCE_EXHAUSTED, /config .*8 MiB/));
  assert.equal(reg.blobRequests(img.configDigest).length, 0);
  const endless = await reg.addImage('limits/config', 'v2', files, { config: { Env: ['V=2'] } });
  reg.sent = 0;
  reg.hook = (req, res, f) => (req.url?.endsWith(`/blobs/${endless.configDigest}`) ? (f.endless(res, 200, {}), true) : false);
  await assert.rejects(pull('limits/config:v2'), fails(status.DATA_LOSS, /larger than its declared/));
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('an endless token response is cut at 1 MiB', async () => {
  await reg.addImage('limits/token', 'v1', files);
  reg.sent = 0;
  reg.hook = (req, res, f) => {
    if (req.url?.startsWith('/token')) return (f.endless(res, 200, { 'content-type': 'application/json' }), true);
    if (!req.headers.authorization) return (void res.writeHead(401, { 'www-authenticate': `Bearer realm="${f.url}/token",service="fake"` }).end(), true);
    return false;
  };
  await assert.rejects(pull('limits/token:v1', { username: 'u', password: 'p' }), fails(status.RESOURCE_EXHAUSTED, /token .*larger than 1 MiB/));
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('an endless error body is read no further than the quote in the message', async () => {
  reg.sent = 0;
  reg.hook = (req, res, f) => (req.url?.includes('/manifests/') ? (f.endless(res, 403, { 'content-type': 'text/plain' }), true) : false);
  await assert.rejects(pull('limits/error:v1'), (e: any) => e.code === status.UNAUTHENTICATED && e.details.length < 1000);
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('a manifest trickled slowly but steadily is not a stall', async () => {
  const img = await reg.addImage('limits/slow', 'v1', files);
  reg.hook = (req, res, f) =>
    req.url?.endsWith('/manifests/v1') && req.url.includes('limits/slow')
      ? (f.trickle(res, img.manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, Math.ceil(img.manifest.length / 6), 600), true)
      : false;
  assert.equal((await pull('limits/slow:v1')).image_ref, img.configDigest);
});

test('Retry-After on 429 and 503 is waited for; a wait longer than tscri allows fails at once', async () => {
  const img = await reg.addImage('retry/after', 'v1', files);
  let limited = 2;
  reg.hook = (req, res) => {
    if (!req.url?.includes('retry/after/manifests/') || limited-- <= 0) return false;
    return (
      void res
        .writeHead(limited ? 429 : 503, { 'retry-after': '2', 'content-type': 'application/json' })
        .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'),
      true
    );
  };
  assert.equal((await pull('retry/after:v1')).image_ref, img.configDigest);
  const times = reg.manifestRequests('retry/after').map((r) => r.at);
  assert.equal(times.length, 3);
  assert.ok(times[1]! - times[0]! >= 1900 && times[2]! - times[1]! >= 1900, `waited as asked: ${times.map((t) => t - times[0]!)}`);
  const before = reg.manifestRequests('retry/later').length;
  reg.hook = (req, res) => (req.url?.includes('retry/later/') ? (res.writeHead(503, { 'retry-after': '3600' }).end(), true) : false);
  await assert.rejects(pull('retry/later:v1'), fails(status.UNAVAILABLE, /asks to retry after 3600s.*try again later/));
  assert.equal(reg.manifestRequests('retry/later').length - before, 1);
});

test('a Retry-After past the pull timeout fails at once', async (t) => {
  const short = await startDaemon({ config: '[image]\npull_timeout_seconds = 5\n' });
  t.after(() => short.cleanup());
  reg.hook = (req, res) => (req.url?.includes('retry/timeout/') ? (res.writeHead(429, { 'retry-after': '30' }).end(), true) : false);
  const started = Date.now();
  await assert.rejects(
    short.call('PullImage', { image: { image: `${reg.host}/retry/timeout:v1` } }),
    fails(status.UNAVAILABLE, /asks to retry after 30s, past the pull's deadline/),
  );
  assert.ok(Date.now() - started < 4000);
  assert.equal(reg.manifestRequests('retry/timeout').length, 1);
});

test('a manifest that stalls fails with DEADLINE_EXCEEDED after the progress deadline', async () => {
  reg.hook = (req, res) =>
    req.url?.includes('stall/manifest/')
      ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': '1000' }).write('{"schema'), true)
      : false;
  await assert.rejects(
    pull('stall/manifest:v1'),
    fails(status.DEADLINE_EXCEEDED, new RegExp(`sent no data for ${DEADLINE_SECONDS}s while fetching manifest v1`)),
  );
  reg.hook = (req) => !!req.url?.includes('stall/headers/'); // never answers
  await assert.rejects(pull('stall/headers:v1'), fails(status.DEADLINE_EXCEEDED, /sent no data/));
  await servesOn();
});

const requestsFor = (repo: string) => reg.requests.filter((r) => r.url.startsWith(`/v2/${repo}/`));

test('a pinned reference with a malformed or unverifiable digest is refused before any request', async () => {
  for (const digest of ['sha256:abc', `md5:${'a'.repeat(32)}`, `sha256:${'A'.repeat(64)}`, `sha384:${'a'.repeat(96)}`, `sha512:${'a'.repeat(64)}`]) {
    await assert.rejects(pull(`digest/refused@${digest}`), fails(status.INVALID_ARGUMENT, /digest/));
  }
  assert.deepEqual(requestsFor('digest/refused'), []);
});

test('sha512 digests are verified like sha256: a sha512-pinned image pulls, altered content does not', async () => {
  const img = await reg.addImage('digest/sha512', 'v1', [[{ name: 'sha512', body: 'a layer of its own' }]], { algorithm: 'sha512' });
  reg.hook = undefined;
  const ref = `digest/sha512@${img.manifestDigest}`;
  assert.match(img.manifestDigest, /^sha512:[a-f0-9]{128}$/);
  assert.equal((await pull(ref)).image_ref, img.configDigest);
  const { image } = await d.call('ImageStatus', { image: { image: img.configDigest } });
  assert.deepEqual(image.repo_digests, [`${reg.host}/${ref}`]);
  assert.ok((await d.call('ListImages', {})).images.some((i: any) => i.id === img.configDigest));
  assert.deepEqual(
    (await readdir(join(d.root, 'content', 'blobs', 'sha512'))).sort(),
    [img.configDigest, ...img.layerDigests].map((x) => x.slice('sha512:'.length)).sort(),
  );
  await d.call('RemoveImage', { image: { image: img.configDigest } });
  assert.deepEqual(await readdir(join(d.root, 'content', 'blobs', 'sha512')), []);
  // The same digests, other bytes.
  reg.hook = (req, res) =>
    req.url?.endsWith(`/manifests/${img.manifestDigest}`)
      ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(img.manifest.toString().replace('sha512', 'sha512 ')), true)
      : false;
  await assert.rejects(pull(ref), fails(status.DATA_LOSS, /does not match its digest/));
  const layer = img.layerDigests[0]!;
  reg.hook = (req, res) => (req.url?.endsWith(`/blobs/${layer}`) ? (res.writeHead(200).end(Buffer.alloc(reg.blobs.get(layer)!.length)), true) : false);
  await assert.rejects(pull(ref), fails(status.DATA_LOSS, /does not match its digest/));
  await servesOn();
});

test('an index child named by a malformed, unverifiable or wrong digest is refused, never fetched by that name', async () => {
  const img = await reg.addImage('digest/index', 'child', files, { config: { Env: ['INDEX=1'] } });
  reg.hook = undefined;
  const cases: Array<[string, number, status, RegExp]> = [
    ['sha256:../../../../blobs/uploads', img.manifestSize, status.FAILED_PRECONDITION, /manifests\[0\]\.digest is not a digest/],
    [`md5:${'a'.repeat(32)}`, img.manifestSize, status.FAILED_PRECONDITION, /algorithm md5, which tscri cannot verify/],
    [`sha512:${'0'.repeat(128)}`, img.manifestSize, status.DATA_LOSS, /does not match its digest/],
    [img.manifestDigest, img.manifestSize + 1, status.DATA_LOSS, /declared/],
  ];
  for (const [i, [digest, size, code, pattern]] of cases.entries()) {
    reg.addIndex('digest/index', `case${i}`, [{ digest, size }]);
    // A registry that serves anything under any name: only the check can refuse it.
    reg.hook = (req, res) =>
      req.url?.includes('/manifests/') && !req.url.endsWith(`/case${i}`)
        ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(img.manifest), true)
        : false;
    const before = requestsFor('digest/index').length;
    await assert.rejects(pull(`digest/index:case${i}`), fails(code, pattern));
    const asked = requestsFor('digest/index')
      .slice(before)
      .map((r) => r.url);
    if (code === status.FAILED_PRECONDITION) assert.deepEqual(asked, [`/v2/digest/index/manifests/case${i}`], 'only the index is fetched');
  }
  reg.hook = undefined;
  reg.addIndex('digest/index', 'good', [{ digest: img.manifestDigest, size: img.manifestSize }]);
  assert.equal((await pull('digest/index:good')).image_ref, img.configDigest);
  await servesOn();
});

test('a manifest fetched by tag must match the Docker-Content-Digest sent with it', async () => {
  const img = await reg.addImage('digest/header', 'v1', files, { config: { Env: ['HEADER=1'] } });
  const serveWith = (header: string) =>
    (reg.hook = (req, res) =>
      req.url?.endsWith('digest/header/manifests/v1')
        ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': header }).end(img.manifest), true)
        : false);
  serveWith(sha256('something else'));
  await assert.rejects(pull('digest/header:v1'), fails(status.DATA_LOSS, /does not match the digest sha256:[a-f0-9]{64} registry .* announced/));
  serveWith('crc32:1234abcd');
  await assert.rejects(pull('digest/header:v1'), fails(status.FAILED_PRECONDITION, /Docker-Content-Digest .* algorithm crc32/));
  serveWith(img.manifestDigest);
  assert.equal((await pull('digest/header:v1')).image_ref, img.configDigest);
});

test('config, layer and diff id digests that are malformed or unverifiable fail the pull before any blob is fetched', async () => {
  reg.hook = undefined;
  const cases: Array<[string, (m: Record<string, any>) => void, RegExp]> = [
    ['config', (m) => (m.config.digest = 'sha256:nothex'), /config\.digest is not a valid sha256 digest/],
    ['layer', (m) => (m.layers[0].digest = `blake3:${'a'.repeat(64)}`), /layers\[0\]\.digest uses the digest algorithm blake3/],
    ['nodigest', (m) => delete m.layers[0].digest, /layers\[0\]\.digest must be a string/],
    ['nosize', (m) => delete m.config.size, /config\.size must be a size/],
  ];
  for (const [tag, edit, pattern] of cases) {
    await reg.addImage('digest/descriptors', tag, files, { editManifest: edit });
    const before = requestsFor('digest/descriptors').length;
    await assert.rejects(pull(`digest/descriptors:${tag}`), fails(status.FAILED_PRECONDITION, pattern));
    assert.deepEqual(
      requestsFor('digest/descriptors')
        .slice(before)
        .filter((r) => r.url.includes('/blobs/')),
      [],
    );
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:../x'] } }));
  await reg.addImage('digest/descriptors', 'diffid', files, { rawConfig: config });
  await assert.rejects(pull('digest/descriptors:diffid'), fails(status.FAILED_PRECONDITION, /rootfs\.diff_ids\[0\] is not a digest/));
  await servesOn();
});

test('a wrongly typed config or manifest field is refused at pull time, naming the field; the listing is unharmed', async () => {
  reg.hook = undefined;
  const cases: Array<[string, Parameters<FakeRegistry['addImage']>[3], RegExp]> = [
    ['user', { config: { User: 1000 } }, /config\.User must be a string \(it is the number 1000\)/],
    ['env', { config: { Env: 'PATH=/bin' } }, /config\.Env must be an array of strings/],
    ['cmd', { config: { Cmd: ['sh', 1] } }, /config\.Cmd\[1\] must be a string/],
    ['labels', { config: { Labels: { a: 1 } } }, /config\.Labels\.a must be a string/],
    ['annotations', { editManifest: (m) => (m.annotations = 'a string') }, /manifest .* field annotations must be an object/],
    ['layers', { editManifest: (m) => (m.layers = { 0: m.layers[0] }) }, /field layers must be an array/],
    ['schema1', { editManifest: (m) => (m.schemaVersion = 1) }, /schemaVersion must be 2/],
    ['json', { rawConfig: Buffer.from('{"architecture": "amd64", "os": "linux", ') }, /image config sha256:[a-f0-9]{64} is not valid JSON/],
    ['rootfs', { rawConfig: Buffer.from('{"architecture": "amd64", "os": "linux"}') }, /rootfs must be an object/],
  ];
  for (const [tag, options, pattern] of cases) {
    await reg.addImage('types/bad', tag, files, options);
    await assert.rejects(pull(`types/bad:${tag}`), fails(status.FAILED_PRECONDITION, pattern));
  }
  assert.ok(Array.isArray((await d.call('ListImages', {})).images));
  assert.equal((await d.call('ImageStatus', { image: { image: `${reg.host}/types/bad:user` } })).image, null);
  await servesOn();
});

test('a manifest that is not JSON, or not an object, is FAILED_PRECONDITION', async () => {
  reg.putManifest('types/manifest', ['text'], Buffer.from('<html>not a manifest</html>'));
  reg.putManifest('types/manifest', ['array'], Buffer.from('[1, 2]'));
  await assert.rejects(pull('types/manifest:text'), fails(status.FAILED_PRECONDITION, /manifest for text that is not JSON/));
  await assert.rejects(pull('types/manifest:array'), fails(status.FAILED_PRECONDITION, /not a JSON object/));
});

test('a layer that is not a tar, or corrupt gzip, is FAILED_PRECONDITION naming the layer; nothing stays', async () => {
  const notTar = await reg.addImage('types/layer', 'text', [], { rawLayers: [Buffer.from('just some text, not a tar archive\n'.repeat(40))] });
  await assert.rejects(
    pull('types/layer:text'),
    fails(status.FAILED_PRECONDITION, new RegExp(`layer ${notTar.layerDigests[0]}: the layer is not a valid tar archive`)),
  );
  const corrupt = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(200, 0x55)]);
  await reg.addImage('types/layer', 'gzip', [], {
    rawLayers: [corrupt],
    editManifest: (m) => (m.layers[0].mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'),
  });
  await assert.rejects(pull('types/layer:gzip'), fails(status.FAILED_PRECONDITION, /gzip data is corrupt/));
  await reg.addImage('types/layer', 'lz4', files, { editManifest: (m) => (m.layers[0].mediaType = 'application/vnd.oci.image.layer.v1.tar+lz4') });
  const before = reg.requests.length;
  await assert.rejects(pull('types/layer:lz4'), fails(status.FAILED_PRECONDITION, /lz4 compression, which is not supported/));
  assert.deepEqual(
    reg.requests.slice(before).filter((r) => r.url.includes('/blobs/')),
    [],
    'nothing is downloaded for a layer that cannot be unpacked',
  );
  assert.deepEqual(
    (await readdir(join(d.root, 'snapshots'))).filter((n) => n.startsWith('tmp-')),
    [],
  );
  await servesOn();
});

test('NUL bytes in image names are INVALID_ARGUMENT or an empty answer, never INTERNAL', async () => {
  for (const name of [
    'busybox\0',
    `${reg.host}/types/nul\0:v1`,
    `${reg.host}/types/nul:v1\0`,
    `\0${reg.host}/types/nul:v1`,
    `${reg.host}/types/nul@sha256:\0`,
  ]) {
    await assert.rejects(d.call('PullImage', { image: { image: name } }), fails(status.INVALID_ARGUMENT, /image reference|digest/));
    assert.equal((await d.call('ImageStatus', { image: { image: name } })).image, null);
    await d.call('RemoveImage', { image: { image: name } });
    assert.deepEqual((await d.call('ListImages', { filter: { image: { image: name } } })).images, []);
  }
  await servesOn();
});

test('a stored record that cannot be rendered is skipped with a warning after a restart; the others are listed', async (t) => {
  const rd = await startDaemon();
  const dir = rd.dir;
  let current = rd;
  t.after(async () => {
    await current.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const img = await reg.addImage('types/record', 'v1', files, { config: { Env: ['RECORD=1'] } });
  reg.hook = undefined;
  await rd.call('PullImage', { image: { image: `${reg.host}/types/record:v1` } });
  const good = JSON.parse(await readFile(join(rd.root, 'images', `${img.configDigest}.json`), 'utf8'));
  const bad = (id: string, change: (r: any) => void) => {
    const record = structuredClone(good);
    record.id = id;
    record.repoTags = [`${reg.host}/types/record:${id.slice(7, 15)}`];
    change(record);
    return writeFile(join(rd.root, 'images', `${id}.json`), JSON.stringify(record));
  };
  const ids = ['user', 'annotations', 'torn'].map((n) => sha256(n));
  await bad(ids[0]!, (r) => (r.config.config.User = 1000));
  await bad(ids[1]!, (r) => (r.annotations = 'a string'));
  await writeFile(join(rd.root, 'images', `${ids[2]}.json`), '{"id": "');
  await rd.stop();
  current = await startDaemon({ dir });
  const { images } = await current.call('ListImages', {});
  assert.deepEqual(
    images.map((i: any) => i.id),
    [img.configDigest],
  );
  for (const id of ids) {
    assert.equal((await current.call('ImageStatus', { image: { image: id } })).image, null);
    assert.match(current.output(), new RegExp(`"file":"[^"]*${id}\\.json".*image record skipped`));
  }
  assert.equal((await current.call('StreamImages', {}))[0].images.length, 1);
});

test('credentials go only to the registry they were given for: a mirror that asks gets none, unless configured for it by name', async (t) => {
  const upstream = await new FakeRegistry().start();
  const greedy = await new FakeRegistry().start();
  const trusted = await new FakeRegistry().start();
  const hosts = await mkdtemp(join(tmpdir(), 'tscri-hosts-'));
  const md = await startDaemon({
    config: [
      '[registry]',
      `config_path = "${hosts}"`,
      '[registry.auths."victim.local"]',
      'username = "u"',
      'password = "configured"',
      `[registry.auths."${trusted.host}"]`,
      'username = "m"',
      'password = "mirror-own"',
      '',
    ].join('\n'),
  });
  t.after(async () => {
    await md.cleanup();
    for (const r of [upstream, greedy, trusted]) await r.stop();
    await rm(hosts, { recursive: true, force: true });
  });
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const requireBasic = (allowed: string[]) => (req: IncomingMessage, res: ServerResponse) => {
    if (allowed.includes(String(req.headers.authorization))) return false;
    return (void res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end(), true);
  };
  upstream.hook = requireBasic([basic('u', 'configured'), basic('u', 'requested')]);
  // The greedy mirror asks for basic credentials, or for a bearer token from a realm of its own.
  let bearer = false;
  greedy.hook = (req, res, f) => {
    if (req.url?.startsWith('/token')) return (void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"anonymous"}'), true);
    bearer = !bearer;
    return (void res.writeHead(401, { 'www-authenticate': bearer ? `Bearer realm="${f.url}/token",service="greedy"` : 'Basic realm="greedy"' }).end(), true);
  };
  trusted.hook = requireBasic([basic('m', 'mirror-own')]);
  for (const [name, mirror] of [
    ['victim.local', greedy],
    ['trusted.local', trusted],
  ] as const) {
    await mkdir(join(hosts, name));
    await writeFile(
      join(hosts, name, 'hosts.toml'),
      `server = "http://${upstream.host}"\n[host."http://${mirror.host}"]\ncapabilities = ["pull", "resolve"]\n`,
    );
  }
  const a = await upstream.addImage('app', 'v1', files, { config: { Env: ['MIRRORS=1'] } });
  await trusted.addImage('app', 'v1', files, { config: { Env: ['MIRRORS=1'] } });
  const pullFrom = (ref: string, auth?: object) => md.call('PullImage', { image: { image: ref }, ...(auth ? { auth } : {}) });
  assert.equal((await pullFrom('victim.local/app:v1')).image_ref, a.configDigest);
  await md.call('RemoveImage', { image: { image: a.configDigest } });
  assert.equal((await pullFrom('victim.local/app:v1', { username: 'u', password: 'requested' })).image_ref, a.configDigest);
  await md.call('RemoveImage', { image: { image: a.configDigest } });
  // Credentials the request gives for another registry are not used for this one (the configured ones are).
  const withRequested = () => upstream.requests.filter((r) => r.headers.authorization === basic('u', 'requested')).length;
  const before = withRequested();
  assert.equal(
    (await pullFrom('victim.local/app:v1', { username: 'u', password: 'requested', server_address: 'https://elsewhere.example/v1/' })).image_ref,
    a.configDigest,
  );
  assert.equal(withRequested(), before);
  await md.call('RemoveImage', { image: { image: a.configDigest } });
  assert.ok(greedy.requests.length >= 4, 'the mirror was asked first');
  assert.ok(
    greedy.requests.some((r) => r.url.startsWith('/token')),
    'and sent to its token realm',
  );
  // It only ever sees the anonymous token it handed out itself.
  assert.deepEqual(
    greedy.requests.map((r) => r.headers.authorization).filter((h) => h && h !== 'Bearer anonymous'),
    [],
    'the greedy mirror never got credentials',
  );
  assert.ok(upstream.requests.some((r) => r.headers.authorization === basic('u', 'configured')));
  assert.ok(upstream.requests.some((r) => r.headers.authorization === basic('u', 'requested')));
  // A mirror configured by its own name gets its own credentials, never the registry's.
  assert.equal((await pullFrom('trusted.local/app:v1', { username: 'u', password: 'requested' })).image_ref, a.configDigest);
  const sent = new Set(trusted.requests.map((r) => r.headers.authorization).filter(Boolean));
  assert.deepEqual([...sent], [basic('m', 'mirror-own')]);
  assert.ok(!md.output().includes('mirror-own') && !md.output().includes('requested"'), 'no credential reaches the log');
});
