// Pulling against a scripted registry: retries, resumed and redirected
// blobs, stalls, size and digest checks, bearer tokens, mirrors and
// capabilities. Failures leave no blob and no partial file behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { defaultConfig } from '../../../src/config/config.ts';
import { ContentStore } from '../../../src/image/content.ts';
import { pullImage, PullStalledError, NotFoundError, type PullContext } from '../../../src/image/pull.ts';
import { parseReference } from '../../../src/image/reference.ts';
import { RegistryError, type Credentials } from '../../../src/image/registry.ts';
import { SnapshotStore } from '../../../src/snapshot/snapshots.ts';
import { FakeRegistry } from '../../helpers/fake-registry.ts';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(options: { hosts?: Record<string, string>; deadline?: number; credentials?: Credentials } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-pull-unit-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const config = defaultConfig();
  config.registry.config_path = join(dir, 'hosts');
  config.image.progress_deadline_seconds = options.deadline ?? 30;
  for (const [host, text] of Object.entries(options.hosts ?? {})) {
    await mkdir(join(dir, 'hosts', host), { recursive: true });
    await writeFile(join(dir, 'hosts', host, 'hosts.toml'), text);
  }
  const content = new ContentStore(join(dir, 'content'));
  await content.load();
  const snapshots = new SnapshotStore(join(dir, 'snapshots'));
  await snapshots.load();
  const controller = new AbortController();
  const ctx: PullContext = {
    config,
    log: pino({ level: 'silent' }),
    content,
    snapshots,
    signal: controller.signal,
    credentials: async () => options.credentials ?? {},
    created: { blobs: new Set(), chains: new Set() },
    using: { blobs: new Set(), chains: new Set() },
  };
  return { ctx, content, snapshots, controller, blobsDir: content.dir };
}

async function fake(): Promise<FakeRegistry> {
  const f = await new FakeRegistry().start();
  cleanups.push(() => f.stop());
  return f;
}

const files = [
  [
    { name: 'etc/', type: 'directory' as const },
    { name: 'etc/hello', body: 'hello\n' },
  ],
  [{ name: 'data', body: randomBytes(200_000) }],
];

test('a pull stores config and layers and unpacks each layer once', async () => {
  const reg = await fake();
  const img = await reg.addImage('a/b', 'v1', files, { config: { User: '1000' } });
  const { ctx, content, snapshots } = await setup();
  const pulled = await pullImage(parseReference(`${reg.host}/a/b:v1`), ctx);
  assert.equal(pulled.id, img.configDigest);
  assert.equal(pulled.manifestDigest, img.manifestDigest);
  assert.equal(pulled.config.config?.User, '1000');
  assert.equal(pulled.chainIds.length, 2);
  assert.deepEqual((await content.list()).sort(), [img.configDigest, ...img.layerDigests].sort());
  assert.equal(await readFile(join(snapshots.dir(pulled.chainIds[0]!), 'etc/hello'), 'utf8'), 'hello\n');
  // A second pull downloads nothing.
  const before = reg.requests.length;
  await pullImage(parseReference(`${reg.host}/a/b@${img.manifestDigest}`), ctx);
  assert.equal(reg.requests.filter((r) => r.url.includes('/blobs/')).length, reg.requests.slice(0, before).filter((r) => r.url.includes('/blobs/')).length);
});

test('server errors and cut connections are retried; a cut blob resumes with a range request', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/retry', 'v1', files);
  const big = img.layerDigests[1]!;
  let manifestFailures = 2;
  let cut = 1;
  reg.hook = (req, res, f) => {
    if (req.url?.includes('/manifests/') && manifestFailures-- > 0) return (void res.writeHead(503).end(), true);
    if (req.url?.endsWith(big) && cut-- > 0) {
      const blob = f.blobs.get(big)!;
      res.writeHead(200, { 'content-length': blob.length });
      res.write(blob.subarray(0, 50_000), () => setTimeout(() => res.destroy(), 50));
      return true;
    }
    return false;
  };
  const { ctx, content } = await setup();
  await pullImage(parseReference(`${reg.host}/r/retry:v1`), ctx);
  assert.ok(await content.has(big));
  const tries = reg.blobRequests(big);
  assert.equal(tries.length, 2);
  assert.equal(tries[0]!.headers.range, undefined);
  assert.match(String(tries[1]!.headers.range), /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(String(tries[1]!.headers.range))![0]) > 0);
});

test('a registry that ignores the range starts the blob over', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/norange', 'v1', files);
  const big = img.layerDigests[1]!;
  let cut = 1;
  reg.hook = (req, res, f) => {
    if (!req.url?.endsWith(big)) return false;
    const blob = f.blobs.get(big)!;
    res.writeHead(200, { 'content-length': blob.length });
    if (cut-- > 0) res.write(blob.subarray(0, 30_000), () => setTimeout(() => res.destroy(), 50));
    else res.end(blob);
    return true;
  };
  const { ctx, content } = await setup();
  await pullImage(parseReference(`${reg.host}/r/norange:v1`), ctx);
  assert.ok(await content.has(big));
});

test('blobs redirected to storage elsewhere are fetched without the registry credentials', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/redirect', 'v1', files);
  const storage = createServer((req, res) => {
    seen.push(req.headers.authorization);
    const digest = req.url!.slice(1);
    res.writeHead(200).end(reg.blobs.get(digest));
  });
  const seen: Array<string | undefined> = [];
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise((r) => storage.close(r)));
  const storagePort = (storage.address() as { port: number }).port;
  const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
  reg.hook = (req, res) => {
    if (req.headers.authorization !== basic) return (void res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end(), true);
    const m = /\/blobs\/(sha256:.+)$/.exec(req.url ?? '');
    if (m) return (void res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/${m[1]}` }).end(), true);
    return false;
  };
  const { ctx, content } = await setup({ credentials: { username: 'u', password: 'p' } });
  await pullImage(parseReference(`${reg.host}/r/redirect:v1`), ctx);
  assert.ok(await content.has(img.layerDigests[0]!));
  assert.equal(seen.length, 3);
  assert.deepEqual(seen, [undefined, undefined, undefined]);
});

test('a transfer that stalls fails with the progress deadline and leaves no partial file', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/stall', 'v1', files);
  const big = img.layerDigests[1]!;
  reg.hook = (req, res, f) => {
    if (!req.url?.endsWith(big)) return false;
    const blob = f.blobs.get(big)!;
    res.writeHead(200, { 'content-length': blob.length });
    res.write(blob.subarray(0, 10_000));
    return true; // and never more
  };
  const { ctx, content, blobsDir } = await setup({ deadline: 1 });
  await assert.rejects(
    pullImage(parseReference(`${reg.host}/r/stall:v1`), ctx),
    (e: any) => e instanceof PullStalledError && /sent no data for 1s while fetching blob/.test(e.message),
  );
  assert.equal(await content.has(big), false);
  assert.deepEqual(
    (await readdir(blobsDir)).filter((n) => n.includes('.tmp-')),
    [],
  );
});

test('a blob larger than declared or with the wrong digest fails at once, without retries', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/bad', 'v1', files);
  const small = img.layerDigests[0]!;
  reg.hook = (req, res, f) => {
    if (!req.url?.endsWith(small)) return false;
    const blob = Buffer.from(f.blobs.get(small)!);
    blob[blob.length - 3]! ^= 0xff;
    res.writeHead(200).end(blob);
    return true;
  };
  const { ctx, content, blobsDir } = await setup();
  await assert.rejects(pullImage(parseReference(`${reg.host}/r/bad:v1`), ctx), { name: 'DigestMismatchError' });
  assert.equal(reg.blobRequests(small).length, 1);
  assert.equal(await content.has(small), false);
  assert.deepEqual(
    (await readdir(blobsDir)).filter((n) => n.includes('.tmp-')),
    [],
  );
  reg.hook = (req, res, f) => {
    if (!req.url?.endsWith(small)) return false;
    res.writeHead(200).end(Buffer.concat([f.blobs.get(small)!, Buffer.from('extra')]));
    return true;
  };
  await assert.rejects(pullImage(parseReference(`${reg.host}/r/bad:v1`), ctx), (e: any) => /larger than its declared/.test(e.message));
});

test('a manifest fetched by digest must match it', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/md', 'v1', files);
  reg.hook = (req, res) =>
    req.url?.includes(`/manifests/${img.manifestDigest}`)
      ? (res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end('{"schemaVersion":2,"layers":[]}'), true)
      : false;
  const { ctx } = await setup();
  await assert.rejects(pullImage(parseReference(`${reg.host}/r/md@${img.manifestDigest}`), ctx), /does not match its digest/);
});

test('the bearer flow asks the token service with the scope once and reuses the token', async () => {
  const reg = await fake();
  await reg.addImage('t/one', 'v1', files);
  await reg.addImage('t/one', 'v2', [[{ name: 'v2', body: '2' }]]);
  const tokenCalls: URL[] = [];
  reg.hook = (req, res, f) => {
    const url = new URL(req.url!, `http://${f.host}`);
    if (url.pathname === '/token') {
      tokenCalls.push(url);
      if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cret').toString('base64')}`) return (void res.writeHead(401).end(), true);
      return (
        void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ access_token: `tok-${url.searchParams.get('scope')}`, expires_in: 300 })),
        true
      );
    }
    if (req.headers.authorization !== 'Bearer tok-repository:t/one:pull') {
      return (
        void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${f.host}/token",service="fake",scope="repository:t/one:pull"` }).end(), true
      );
    }
    return false;
  };
  const { ctx } = await setup({ credentials: { username: 'alice', password: 's3cret' } });
  await pullImage(parseReference(`${reg.host}/t/one:v1`), ctx);
  await pullImage(parseReference(`${reg.host}/t/one:v2`), ctx);
  assert.equal(tokenCalls.length, 1);
  assert.equal(tokenCalls[0]!.searchParams.get('service'), 'fake');
  assert.equal(tokenCalls[0]!.searchParams.get('scope'), 'repository:t/one:pull');
  // Other credentials do not get the cached token.
  const other = await setup({ credentials: { username: 'alice', password: 'wrong' } });
  await assert.rejects(
    pullImage(parseReference(`${reg.host}/t/one:v1`), other.ctx),
    (e: any) => e instanceof RegistryError && e.status === 401 && !e.message.includes('wrong'),
  );
  assert.equal(tokenCalls.length, 2);
});

test('mirrors are tried in order before the upstream; a pull-only mirror never resolves tags', async () => {
  const upstream = await fake();
  const img = await upstream.addImage('m/app', 'v1', files);
  const broken = await fake();
  broken.hook = (_req, res) => (res.writeHead(500).end(), true);
  const pullOnly = await fake();
  const name = 'registry.invalid';
  const hosts = {
    [name]: `server = "http://${upstream.host}"\n[host."http://${broken.host}"]\ncapabilities = ["pull", "resolve"]\n[host."http://${pullOnly.host}"]\ncapabilities = ["pull"]\n`,
  };
  const { ctx } = await setup({ hosts });
  const pulled = await pullImage(parseReference(`${name}/m/app:v1`), ctx);
  assert.equal(pulled.id, img.configDigest);
  assert.ok(broken.requests.length >= 1);
  assert.equal(pullOnly.requests.length, 0);
  // By digest the pull-only mirror is asked (and, lacking it, the upstream serves).
  await pullImage(parseReference(`${name}/m/app@${img.manifestDigest}`), ctx);
  assert.ok(pullOnly.requests.some((r) => r.url.includes(img.manifestDigest)));
});

test('a missing image is NotFoundError; an index without the host platform says what it offers', async () => {
  const reg = await fake();
  const { ctx } = await setup();
  await assert.rejects(pullImage(parseReference(`${reg.host}/no/such:v1`), ctx), NotFoundError);
  const arm = await reg.addImage('p/arm', 'only', files, { architecture: 'arm64' });
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: arm.manifestDigest,
          size: 1,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
      ],
    }),
  );
  reg.manifests.set('p/arm:idx', { body: index, mediaType: 'application/vnd.oci.image.index.v1+json' });
  if (process.arch === 'x64')
    await assert.rejects(pullImage(parseReference(`${reg.host}/p/arm:idx`), ctx), /has no linux\/amd64 variant \(it offers linux\/arm64\/v8\)/);
});

test('a blob the registry keeps refusing with 503 is asked three times in all, not once per retry layer', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/refuse', 'v1', files);
  const big = img.layerDigests[1]!;
  reg.hook = (req, res) => (req.url?.endsWith(big) ? (res.writeHead(503).end(), true) : false);
  const { ctx } = await setup();
  await assert.rejects(pullImage(parseReference(`${reg.host}/r/refuse:v1`), ctx), (e: any) => e instanceof RegistryError && e.status === 503);
  assert.equal(reg.blobRequests(big).length, 3);
});

test('when one layer fails, the others stop before the pull reports it: nothing is written afterwards', async () => {
  const reg = await fake();
  const img = await reg.addImage('r/sibling', 'v1', [[{ name: 'bad', body: 'bad' }], [{ name: 'slow', body: randomBytes(100_000) }]]);
  const [bad, slow] = img.layerDigests as [string, string];
  reg.hook = (req, res, f) => {
    if (req.url?.endsWith(bad)) return (void res.writeHead(200).end(Buffer.alloc(f.blobs.get(bad)!.length)), true);
    if (req.url?.endsWith(slow)) return (f.trickle(res, f.blobs.get(slow)!, {}, 10_000, 100), true);
    return false;
  };
  const { ctx, content, blobsDir } = await setup();
  await assert.rejects(pullImage(parseReference(`${reg.host}/r/sibling:v1`), ctx), { name: 'DigestMismatchError' });
  const settled = await readdir(blobsDir);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await readdir(blobsDir), settled, 'nothing changes after the pull failed');
  assert.equal(await content.has(slow), false);
  assert.deepEqual(
    settled.filter((n) => n.includes('.tmp-')),
    [],
  );
});
