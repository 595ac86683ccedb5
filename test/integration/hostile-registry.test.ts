// A hostile or broken registry against the daemon's socket: endless and
// oversized bodies, stalls, rate limits, wrong digests, wrongly typed
// documents, credentials a mirror asks for. Each answer is a precise status;
// the daemon's memory stays bounded, nothing is written outside its root,
// and it serves on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
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

const files = [[{ name: 'etc/', type: 'directory' as const }, { name: 'etc/hello', body: 'hello\n' }]];
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
  assert.deepEqual(blobs.filter((b) => b.includes('.tmp-')), []);
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
  reg.hook = (req, res, f) => (req.url?.includes('/manifests/') ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }), true) : false);
  await assert.rejects(pull('limits/endless:v1'), fails(status.RESOURCE_EXHAUSTED, /manifest v1 .*larger than 4 MiB/));
  assert.ok(reg.sent < 64 * MiB, `the daemon stopped reading (${reg.sent} bytes sent)`);
  assert.ok(peakMemory() < 400 * MiB, `peak memory ${peakMemory()}`);
  await servesOn();
});

test('a manifest declaring a huge length is refused before its body is read', async () => {
  reg.sent = 0;
  reg.hook = (req, res, f) => (req.url?.includes('/manifests/') ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(10 * 1024 * MiB) }), true) : false);
  await assert.rejects(pull('limits/declared:v1'), fails(status.RESOURCE_EXHAUSTED, /manifest v1 .*larger than 4 MiB/));
  assert.ok(reg.sent < 64 * MiB, `${reg.sent} bytes sent`);
  await servesOn();
});

test('an endless index child is cut at 4 MiB too', async () => {
  const child = sha256('never served in full');
  reg.addIndex('limits/index', 'v1', [{ digest: child, size: 1000 }]);
  reg.sent = 0;
  reg.hook = (req, res, f) => (req.url?.endsWith(`/manifests/${child}`) ? (f.endless(res, 200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }), true) : false);
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
    if (req.url?.startsWith('/token')) return f.endless(res, 200, { 'content-type': 'application/json' }), true;
    if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${f.url}/token",service="fake"` }).end(), true;
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
  reg.hook = (req, res, f) => (req.url?.endsWith('/manifests/v1') && req.url.includes('limits/slow') ? (f.trickle(res, img.manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, Math.ceil(img.manifest.length / 6), 600), true) : false);
  assert.equal((await pull('limits/slow:v1')).image_ref, img.configDigest);
});

test('Retry-After on 429 and 503 is waited for; a wait longer than tscri allows fails at once', async () => {
  const img = await reg.addImage('retry/after', 'v1', files);
  let limited = 2;
  reg.hook = (req, res) => {
    if (!req.url?.includes('retry/after/manifests/') || limited-- <= 0) return false;
    return void res.writeHead(limited ? 429 : 503, { 'retry-after': '2', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'), true;
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
  await assert.rejects(short.call('PullImage', { image: { image: `${reg.host}/retry/timeout:v1` } }), fails(status.UNAVAILABLE, /asks to retry after 30s, past the pull's deadline/));
  assert.ok(Date.now() - started < 4000);
  assert.equal(reg.manifestRequests('retry/timeout').length, 1);
});

test('a manifest that stalls fails with DEADLINE_EXCEEDED after the progress deadline', async () => {
  reg.hook = (req, res) => (req.url?.includes('stall/manifest/') ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': '1000' }).write('{"schema'), true) : false);
  await assert.rejects(pull('stall/manifest:v1'), fails(status.DEADLINE_EXCEEDED, new RegExp(`sent no data for ${DEADLINE_SECONDS}s while fetching manifest v1`)));
  reg.hook = (req) => (req.url?.includes('stall/headers/') ? true : false); // never answers
  await assert.rejects(pull('stall/headers:v1'), fails(status.DEADLINE_EXCEEDED, /sent no data/));
  await servesOn();
});
