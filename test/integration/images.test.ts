// Images through the daemon socket against loopback registries: pulls of
// OCI and Docker images, layers, platforms, auth, mirrors, failures that
// leave nothing behind, removal and filesystem usage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { access, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type AuthRegistry, type TestRegistry } from '../helpers/registry.ts';
import { lgetxattr } from '../../src/snapshot/syscalls.ts';
import { busyboxEntries, layer, pushBusybox, pushImage, pushIndex } from '../helpers/images.ts';

let registry: TestRegistry;
let basicRegistry: AuthRegistry;
let tokenRegistry: AuthRegistry;
let configured: AuthRegistry;
let d: TestDaemon;
let hostsDir: string;

before(async () => {
  registry = await startRegistry();
  // docker-registry itself checks the credentials; all three serve the open registry's storage.
  basicRegistry = await startRegistry({ auth: 'htpasswd', shareStorageOf: registry });
  tokenRegistry = await startRegistry({ auth: 'token', shareStorageOf: registry });
  configured = await startRegistry({ auth: 'token', shareStorageOf: registry });
  hostsDir = await mkdtemp(join(tmpdir(), 'tscri-hosts-'));
  d = await startDaemon({
    config: [
      '[registry]',
      `config_path = "${hostsDir}"`,
      `[registry.auths."${configured.host}"]`,
      `username = "${configured.username}"`,
      `password = "${configured.password}"`,
      '[image]',
      `pinned_images = ["${registry.host}/test/busybox:v1"]`,
      '',
    ].join('\n'),
  });
});

after(async () => {
  await d?.cleanup();
  for (const r of [configured, tokenRegistry, basicRegistry, registry]) await r?.stop();
  await rm(hostsDir, { recursive: true, force: true });
});

/** The directory of the snapshot for chainId (snapshots are numbered; meta.json names the chain). */
async function snapshotOf(chainId: string): Promise<string> {
  for (const n of await snapshotDirs()) {
    const meta = JSON.parse(await readFile(join(d.root, 'snapshots', n, 'meta.json'), 'utf8'));
    if (meta.chainId === chainId) return join(d.root, 'snapshots', n, 'fs');
  }
  throw new Error(`no snapshot for ${chainId}`);
}

const snapshotDirs = async () => (await readdir(join(d.root, 'snapshots'))).filter((n) => /^\d+$/.test(n));
const blobs = async () => readdir(join(d.root, 'content', 'blobs', 'sha256'));

test('a multi-layer image is pulled, listed and inspected; whiteouts are applied', async () => {
  const pushed = await pushBusybox(registry.url, 'test/busybox', 'v1', { config: { User: '1000' } });
  const ref = `${registry.host}/test/busybox:v1`;
  const { image_ref } = await d.call('PullImage', { image: { image: ref } });
  assert.equal(image_ref, pushed.configDigest);
  const { image } = await d.call('ImageStatus', { image: { image: ref } });
  assert.equal(image.id, pushed.configDigest);
  assert.deepEqual(image.repo_tags, [ref]);
  assert.deepEqual(image.repo_digests, [`${registry.host}/test/busybox@${pushed.manifestDigest}`]);
  assert.equal(image.uid.value, 1000);
  assert.equal(image.pinned, true, 'named in [image] pinned_images');
  assert.ok(image.size > 500_000);
  assert.equal((await d.call('ImageStatus', { image: { image: image.id } })).image.id, image.id);
  assert.equal((await d.call('ImageStatus', { image: { image: `${registry.host}/test/busybox@${pushed.manifestDigest}` } })).image.id, image.id);
  const verbose = await d.call('ImageStatus', { image: { image: ref }, verbose: true });
  assert.equal(JSON.parse(verbose.info.info).layerChainIDs.length, 2);
  assert.equal(JSON.parse(verbose.info.info).chainID, JSON.parse(verbose.info.info).layerChainIDs[1], 'chainID names the top layer as containerd does');
  const { images } = await d.call('ListImages', {});
  assert.ok(images.some((i: any) => i.id === image.id));
  assert.deepEqual(
    (await d.call('ListImages', { filter: { image: { image: ref } } })).images.map((i: any) => i.id),
    [image.id],
  );
  assert.equal((await d.call('StreamImages', {}))[0].images.length, images.length);
  // The files are in the layer snapshots; the top one carries the whiteout and opaque dir for overlay.
  const [bottom, top] = JSON.parse(verbose.info.info).layerChainIDs as string[];
  const base = await snapshotOf(bottom!);
  assert.ok((await stat(join(base, 'bin/busybox'))).size > 500_000);
  assert.equal((await stat(join(base, 'home/user'))).uid, 1000);
  assert.equal((await lstat(join(base, 'bin/sh'))).isSymbolicLink(), true);
  const upper = await snapshotOf(top!);
  const whiteout = await lstat(join(upper, 'etc/removed'));
  assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0);
  assert.equal(lgetxattr(join(upper, 'var/cache'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.equal(await readFile(join(upper, 'var/cache/new'), 'utf8'), 'new');
});

test('an unknown image is an empty status, a missing one a NOT_FOUND pull', async () => {
  assert.deepEqual((await d.call('ImageStatus', { image: { image: 'nope/never:1' } })).image, null);
  await assert.rejects(
    d.call('PullImage', { image: { image: `${registry.host}/test/missing:1` } }),
    (e: any) => e.code === status.NOT_FOUND && /not found/.test(e.details),
  );
  await assert.rejects(d.call('PullImage', { image: { image: 'UPPER/Case' } }), (e: any) => e.code === status.INVALID_ARGUMENT);
});

test('an index picks the host platform', async () => {
  const amd = await pushBusybox(registry.url, 'test/multi', 'amd64');
  const arm = await pushImage(registry.url, 'test/multi', 'arm64', { layers: [await layer([{ name: 'arch', body: 'arm64' }])], architecture: 'arm64' });
  await pushIndex(registry.url, 'test/multi', 'both', [
    { image: arm, architecture: 'arm64', variant: 'v8' },
    { image: amd, architecture: 'amd64' },
  ]);
  const { image_ref } = await d.call('PullImage', { image: { image: `${registry.host}/test/multi:both` } });
  assert.equal(image_ref, amd.configDigest);
  await pushIndex(registry.url, 'test/multi', 'armonly', [{ image: arm, architecture: 'arm64', variant: 'v8' }]);
  await assert.rejects(
    d.call('PullImage', { image: { image: `${registry.host}/test/multi:armonly` } }),
    (e: any) => e.code === status.NOT_FOUND && /no linux\/amd64 variant/.test(e.details),
  );
});

test('zstd and Docker schema2 images pull; the same content under two names is one image', async () => {
  const z = await pushBusybox(registry.url, 'test/zstd', 'v1', { compression: 'zstd' });
  assert.equal((await d.call('PullImage', { image: { image: `${registry.host}/test/zstd:v1` } })).image_ref, z.configDigest);
  const same = { layers: [await layer(busyboxEntries(), 'gzip', true)], docker: true, config: { Env: ['SAME=1'] } };
  const docker = await pushImage(registry.url, 'test/docker', 'v1', same);
  assert.equal((await d.call('PullImage', { image: { image: `${registry.host}/test/docker:v1` } })).image_ref, docker.configDigest);
  await pushImage(registry.url, 'test/copy', 'v1', same);
  await d.call('PullImage', { image: { image: `${registry.host}/test/copy:v1` } });
  const { image } = await d.call('ImageStatus', { image: { image: docker.configDigest } });
  assert.deepEqual(image.repo_tags.sort(), [`${registry.host}/test/copy:v1`, `${registry.host}/test/docker:v1`]);
  assert.equal(image.pinned, false);
});

test('removal by tag untags, by id removes every tag and frees blobs and snapshots', async () => {
  const spec = { layers: [await layer([...busyboxEntries(), { name: 'rm-test', body: 'rm' }])], config: { Env: ['UNIQUE=rm'] } };
  const pushed = await pushImage(registry.url, 'test/rm', 'a', spec);
  const a = `${registry.host}/test/rm:a`;
  await d.call('PullImage', { image: { image: a } });
  await pushImage(registry.url, 'test/rm2', 'a', spec);
  await d.call('PullImage', { image: { image: `${registry.host}/test/rm2:a` } });
  const before = await blobs();
  await d.call('RemoveImage', { image: { image: a } });
  assert.deepEqual((await d.call('ImageStatus', { image: { image: pushed.configDigest } })).image.repo_tags, [`${registry.host}/test/rm2:a`]);
  await Promise.all([1, 2, 3].map(() => d.call('RemoveImage', { image: { image: pushed.configDigest } })));
  assert.equal((await d.call('ImageStatus', { image: { image: pushed.configDigest } })).image, null);
  assert.ok(!(await blobs()).includes(pushed.configDigest.slice(7)));
  assert.ok((await blobs()).length < before.length);
  await d.call('RemoveImage', { image: { image: 'never/pulled:x' } });
});

test('registries demanding basic auth or tokens need credentials, which never reach the log', async () => {
  await pushBusybox(registry.url, 'test/private', 'v1', { config: { Env: ['PRIVATE=1'] } });
  for (const reg of [basicRegistry, tokenRegistry]) {
    const ref = `${reg.host}/test/private:v1`;
    await assert.rejects(d.call('PullImage', { image: { image: ref } }), (e: any) => e.code === status.UNAUTHENTICATED && /credentials/.test(e.details));
    await assert.rejects(
      d.call('PullImage', { image: { image: ref }, auth: { username: reg.username, password: 'wrong' } }),
      (e: any) => e.code === status.UNAUTHENTICATED && !e.details.includes('wrong'),
    );
    const { image_ref } = await d.call('PullImage', { image: { image: ref }, auth: { username: reg.username, password: reg.password } });
    assert.match(image_ref, /^sha256:/);
    const encoded = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    await d.call('RemoveImage', { image: { image: image_ref } });
    assert.equal((await d.call('PullImage', { image: { image: ref }, auth: { auth: encoded } })).image_ref, image_ref);
    assert.ok(!d.output().includes(reg.password), 'the password is not logged');
    assert.ok(!d.output().includes(encoded), 'the encoded credentials are not logged');
  }
  assert.deepEqual([...new Set(tokenRegistry.tokenScopes)], ['repository:test/private:pull']);
});

test('credentials from [registry.auths."host"] are used when the request has none', async () => {
  await pushBusybox(registry.url, 'test/configured', 'v1');
  const { image_ref } = await d.call('PullImage', { image: { image: `${configured.host}/test/configured:v1` } });
  assert.match(image_ref, /^sha256:/);
  assert.ok(configured.tokenScopes.includes('repository:test/configured:pull'));
  assert.ok(!d.output().includes(configured.password));
});

test('credentials from docker-credential-* helpers and an auth file, for their own host only; a hostile helper is FAILED_PRECONDITION', async (t) => {
  await pushBusybox(registry.url, 'test/helped', 'v1');
  const dir = await mkdtemp(join(tmpdir(), 'tscri-credhelpers-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { chmod } = await import('node:fs/promises');
  const helper = async (name: string, body: string) => {
    await writeFile(join(dir, `docker-credential-${name}`), `#!/bin/sh\n${body}\n`);
    await chmod(join(dir, `docker-credential-${name}`), 0o755);
  };
  // The helper notes which server it was asked about, and knows only the basic-auth registry.
  await helper(
    'test',
    `read server; echo "$server" >> ${dir}/asked; if [ "$server" = "${basicRegistry.host}" ]; then printf '{"ServerURL":"%s","Username":"${basicRegistry.username}","Secret":"${basicRegistry.password}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi`,
  );
  await helper('huge', 'head -c 20000000 /dev/zero');
  await helper('prose', `echo "Secret is ${basicRegistry.password}"`);
  const authFile = join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ credHelpers: { [tokenRegistry.host]: 'prose' } }));
  const hd = await startDaemon({
    config: `[registry]\ncreds_store = "test"\nauth_file = "${authFile}"\n[registry.cred_helpers]\n"${configured.host}" = "huge"\n`,
    env: { PATH: `${dir}:${process.env.PATH}` },
  });
  t.after(() => hd.cleanup());

  const ref = `${basicRegistry.host}/test/helped:v1`;
  assert.match((await hd.call('PullImage', { image: { image: ref } })).image_ref, /^sha256:/);
  assert.deepEqual((await readFile(join(dir, 'asked'), 'utf8')).trim().split('\n'), [basicRegistry.host], "asked about the registry's own host");
  // The open registry gets no credentials from a helper that has none for it, and pulls anonymously.
  assert.match((await hd.call('PullImage', { image: { image: `${registry.host}/test/helped:v1` } })).image_ref, /^sha256:/);
  // A helper that writes 20 MB, or prose, fails the pull naming the helper; nothing it said is quoted.
  for (const [host, pattern] of [
    [configured.host, /docker-credential-huge wrote more than 64 KiB/],
    [tokenRegistry.host, /docker-credential-prose answered with something that is not JSON/],
  ] as const) {
    const err = await hd.call('PullImage', { image: { image: `${host}/test/helped:v1` } }).catch((e: any) => e);
    assert.equal(err.code, status.FAILED_PRECONDITION, err.details);
    assert.match(err.details, pattern);
    assert.ok(!err.details.includes(basicRegistry.password));
  }
  assert.equal((await hd.call('Version', {})).runtime_name, 'tscri', 'the daemon serves on');
  assert.ok(!hd.output().includes(basicRegistry.password), "the helper's secret is never logged");
});

test('a mirror from hosts.toml serves another registry name', async () => {
  await pushBusybox(registry.url, 'library/mirrored', 'v1');
  await mkdir(join(hostsDir, 'docker.io'), { recursive: true });
  await writeFile(
    join(hostsDir, 'docker.io', 'hosts.toml'),
    `server = "https://registry-1.docker.io"\n[host."http://${registry.host}"]\ncapabilities = ["pull", "resolve"]\n`,
  );
  const { image_ref } = await d.call('PullImage', { image: { image: 'mirrored:v1' } });
  const { image } = await d.call('ImageStatus', { image: { image: 'docker.io/library/mirrored:v1' } });
  assert.equal(image.id, image_ref);
  assert.deepEqual(image.repo_tags, ['docker.io/library/mirrored:v1']);
});

test('a TLS registry is trusted through the ca (or skip_verify) of its hosts.toml', async (t) => {
  const tls = await startRegistry({ tls: true, shareStorageOf: registry });
  t.after(() => tls.stop());
  const pushed = await pushBusybox(registry.url, 'test/tls', 'v1', { config: { Env: ['TLS=1'] } });
  const ref = `${tls.host}/test/tls:v1`;
  await assert.rejects(
    d.call('PullImage', { image: { image: ref } }),
    (e: any) => e.code === status.UNAVAILABLE && /certificate .* is not trusted/.test(e.details) && /hosts\.toml/.test(e.details),
  );
  const dir = join(hostsDir, tls.host);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.pem'), await readFile(tls.caFile!));
  await writeFile(join(dir, 'hosts.toml'), `server = "${tls.url}"\nca = "ca.pem"\n`);
  assert.equal((await d.call('PullImage', { image: { image: ref } })).image_ref, pushed.configDigest);
  await d.call('RemoveImage', { image: { image: ref } });
  await writeFile(join(dir, 'hosts.toml'), `server = "${tls.url}"\nskip_verify = true\n`);
  assert.equal((await d.call('PullImage', { image: { image: ref } })).image_ref, pushed.configDigest);
  await d.call('RemoveImage', { image: { image: ref } });
});

test('a corrupted blob fails the pull and leaves nothing behind', async (t) => {
  const good = await layer([{ name: 'a', body: 'a' }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [good.diffId] } }));
  const { createHash } = await import('node:crypto');
  const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
    layers: [{ mediaType: good.mediaType, digest: digest(good.blob), size: good.blob.length }],
  });
  const fake = createServer((req, res) => {
    if (req.url === '/v2/') return void res.writeHead(200).end('{}');
    if (req.url?.includes('/manifests/')) return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
    if (req.url?.endsWith(digest(config))) return void res.writeHead(200).end(config);
    const corrupted = Buffer.from(good.blob);
    corrupted[corrupted.length - 5]! ^= 0xff;
    res.writeHead(200).end(corrupted);
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
  t.after(() => fake.close());
  const port = (fake.address() as any).port;
  const blobsBefore = await blobs();
  const snapsBefore = await snapshotDirs();
  await assert.rejects(d.call('PullImage', { image: { image: `127.0.0.1:${port}/bad/image:1` } }), (e: any) => /does not match its digest/.test(e.details));
  assert.deepEqual((await blobs()).sort(), blobsBefore.sort());
  assert.deepEqual((await snapshotDirs()).sort(), snapsBefore.sort());
});

test('a malicious layer fails the pull and writes nothing outside its snapshot', async () => {
  const evil = await layer([{ name: '../../../../../../tmp/tscri-evil', body: 'pwned' }]);
  await pushImage(registry.url, 'test/evil', 'v1', { layers: [evil] });
  await assert.rejects(
    d.call('PullImage', { image: { image: `${registry.host}/test/evil:v1` } }),
    (e: any) => e.code === status.FAILED_PRECONDITION && /escapes the snapshot/.test(e.details),
  );
  await assert.rejects(access('/tmp/tscri-evil'));
  assert.equal((await d.call('ImageStatus', { image: { image: `${registry.host}/test/evil:v1` } })).image, null);
});

test('a symlink pointing out of the snapshot cannot be written through', async () => {
  const evil = await layer([
    { name: 'escape', type: 'symlink', linkname: '/tmp' },
    { name: 'escape/tscri-evil-link', body: 'pwned' },
  ]);
  await pushImage(registry.url, 'test/evil-link', 'v1', { layers: [evil] });
  await assert.rejects(d.call('PullImage', { image: { image: `${registry.host}/test/evil-link:v1` } }), (e: any) => e.code === status.FAILED_PRECONDITION);
  await assert.rejects(access('/tmp/tscri-evil-link'));
  const hard = await layer([{ name: 'passwd', type: 'link', linkname: '../../../../../../etc/passwd' }]);
  await pushImage(registry.url, 'test/evil-hardlink', 'v1', { layers: [hard] });
  await assert.rejects(d.call('PullImage', { image: { image: `${registry.host}/test/evil-hardlink:v1` } }), (e: any) => e.code === status.FAILED_PRECONDITION);
  assert.deepEqual(
    (await readdir(join(d.root, 'snapshots'))).filter((n) => n.startsWith('tmp-')),
    [],
  );
});

test('removal by repo digest removes the image; a digest pull records the digest only', async () => {
  const pushed = await pushImage(registry.url, 'test/bydigest', 'v1', { layers: [await layer([{ name: 'd', body: 'digest' }])] });
  const byDigest = `${registry.host}/test/bydigest@${pushed.manifestDigest}`;
  assert.equal((await d.call('PullImage', { image: { image: byDigest } })).image_ref, pushed.configDigest);
  const { image } = await d.call('ImageStatus', { image: { image: pushed.configDigest } });
  assert.deepEqual(image.repo_tags, []);
  assert.deepEqual(image.repo_digests, [byDigest]);
  await d.call('PullImage', { image: { image: `${registry.host}/test/bydigest:v1` } });
  assert.deepEqual((await d.call('ImageStatus', { image: { image: byDigest } })).image.repo_tags, [`${registry.host}/test/bydigest:v1`]);
  // A unique prefix of the id names the image too.
  assert.equal((await d.call('ImageStatus', { image: { image: pushed.configDigest.slice(7, 19) } })).image.id, pushed.configDigest);
  await d.call('RemoveImage', { image: { image: byDigest } });
  assert.equal((await d.call('ImageStatus', { image: { image: pushed.configDigest } })).image, null);
  assert.equal((await d.call('ImageStatus', { image: { image: `${registry.host}/test/bydigest:v1` } })).image, null);
});

test('a registry that stops sending fails the pull after the progress deadline', async (t) => {
  const sd = await startDaemon({ config: '[image]\nprogress_deadline_seconds = 1\n' });
  t.after(() => sd.cleanup());
  const img = await layer([{ name: 'big', body: (await import('node:crypto')).randomBytes(100_000) }]);
  await pushImage(registry.url, 'test/stall', 'v1', { layers: [img] });
  const stalling = createServer(async (req, res) => {
    const up = await fetch(`${registry.url}${req.url}`, { headers: { accept: String(req.headers.accept ?? '*/*') } });
    const body = Buffer.from(await up.arrayBuffer());
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(body.length) });
    if (req.url?.includes('/blobs/') && body.length > 50_000) res.write(body.subarray(0, 1000));
    else res.end(body);
  });
  await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', () => r()));
  t.after(
    () =>
      new Promise((r) => {
        stalling.closeAllConnections();
        stalling.close(r);
      }),
  );
  const ref = `127.0.0.1:${(stalling.address() as any).port}/test/stall:v1`;
  await assert.rejects(
    sd.call('PullImage', { image: { image: ref } }),
    (e: any) => e.code === status.DEADLINE_EXCEEDED && /sent no data for 1s/.test(e.details) && /progress_deadline_seconds/.test(e.details),
  );
  assert.equal((await sd.call('ImageStatus', { image: { image: ref } })).image, null);
  assert.deepEqual(await readdir(join(sd.root, 'content', 'blobs', 'sha256')), []);
});

test('a 1 ms deadline fails with DEADLINE_EXCEEDED and leaves nothing', async () => {
  await pushImage(registry.url, 'test/deadline', 'v1', { layers: [await layer(busyboxEntries())], config: { Env: ['DEADLINE=1'] } });
  const snapsBefore = await snapshotDirs();
  await assert.rejects(
    d.call('PullImage', { image: { image: `${registry.host}/test/deadline:v1` } }, { timeoutMs: 1 }),
    (e: any) => e.code === status.DEADLINE_EXCEEDED,
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await d.call('ImageStatus', { image: { image: `${registry.host}/test/deadline:v1` } })).image, null);
  assert.deepEqual(
    (await snapshotDirs()).sort(),
    snapsBefore.sort(),
    d
      .output()
      .split('\n')
      .filter((l) => /deadline/.test(l))
      .join('\n'),
  );
  assert.deepEqual(
    (await readdir(join(d.root, 'snapshots'))).filter((n) => n.startsWith('tmp-')),
    [],
  );
});

test('ImageFsInfo reports image and container filesystems', async () => {
  const info = await d.call('ImageFsInfo', {});
  let blobBytes = 0;
  for (const name of await blobs()) blobBytes += (await stat(join(d.root, 'content', 'blobs', 'sha256', name))).size;
  // Blobs plus unpacked snapshots: more than the blobs alone.
  assert.ok(info.image_filesystems[0].used_bytes.value > blobBytes, `${info.image_filesystems[0].used_bytes.value} > ${blobBytes}`);
  assert.ok(info.image_filesystems[0].inodes_used.value > (await blobs()).length + 300, 'busybox applet links are counted');
  assert.ok(info.image_filesystems[0].timestamp > 0);
  assert.ok(info.container_filesystems[0].used_bytes.value >= 0);
  assert.ok(info.image_filesystems[0].inodes_used.value > 10);
  assert.ok(info.image_filesystems[0].fs_id.mountpoint.startsWith(d.root));
  assert.equal(info.container_filesystems.length, 1);
});

test('concurrent pulls of one image share one download', async () => {
  const pushed = await pushBusybox(registry.url, 'test/shared', 'v1', { config: { Env: ['SHARED=1'] } });
  const ref = `${registry.host}/test/shared:v1`;
  const results = await Promise.all([1, 2, 3, 4].map(() => d.call('PullImage', { image: { image: ref } })));
  assert.ok(results.every((r: any) => r.image_ref === pushed.configDigest));
  const pulledLines = () =>
    d
      .output()
      .split('\n')
      .filter((l) => l.includes('image pulled') && l.includes('test/shared'));
  for (let i = 0; i < 100 && !pulledLines().length; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pulledLines().length, 1);
  // Readable by the rest of the suite: the snapshot holds the busybox binary.
  const { image } = await d.call('ImageStatus', { image: { image: ref }, verbose: true });
  assert.ok(image);
  assert.ok((await readFile(join(d.root, 'snapshots', '1', 'meta.json'), 'utf8')).includes('sha256'));
});

/**
 * A pass-through proxy to a registry that can hold the n-th blob transfer
 * half-way, to stop a pull at a known point.
 */
async function gatedProxy(upstream: TestRegistry) {
  let holdAt = -1;
  let blobCount = 0;
  let onHeld: () => void = () => undefined;
  const server = createServer(async (req, res) => {
    const res2 = await fetch(`${upstream.url}${req.url}`, { method: req.method, headers: { accept: String(req.headers.accept ?? '*/*') } });
    const body = Buffer.from(await res2.arrayBuffer());
    const headers: Record<string, string> = {};
    res2.headers.forEach((v, k) => {
      if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(k)) headers[k] = v;
    });
    if (req.method === 'GET' && req.url?.includes('/blobs/') && blobCount++ === holdAt) {
      res.writeHead(res2.status, { ...headers, 'content-length': String(body.length) });
      res.write(body.subarray(0, body.length >> 1), () => onHeld());
      return; // never finished
    }
    res.writeHead(res2.status, headers).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    /** Holds blob transfer n (0-based, counting from now); resolves when it is held. */
    hold(n: number): Promise<void> {
      blobCount = 0;
      holdAt = n;
      return new Promise((r) => (onHeld = r));
    },
    passThrough() {
      holdAt = -1;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

test('a daemon killed at any point of a pull shows no half image, and the next pull completes', async (t) => {
  const proxy = await gatedProxy(registry);
  t.after(() => proxy.stop());
  const { randomBytes } = await import('node:crypto');
  const layers = [
    await layer(busyboxEntries()),
    await layer([
      { name: 'data/', type: 'directory' },
      { name: 'data/a', body: randomBytes(3_000_000) },
    ]),
    await layer([{ name: 'data/b', body: randomBytes(3_000_000) }], 'zstd'),
  ];
  const pushed = await pushImage(registry.url, 'test/crash', 'v1', { layers, config: { Env: ['CRASH=1'] } });
  const ref = `${proxy.host}/test/crash:v1`;
  const config = '[image]\nmax_concurrent_downloads = 1\n';
  let cd = await startDaemon({ config });
  t.after(() => cd.cleanup());
  const root = cd.root;
  const leftovers = async () => ({
    blobs: await readdir(join(root, 'content', 'blobs', 'sha256')),
    snapshots: (await readdir(join(root, 'snapshots'))).filter((n) => /^\d+$/.test(n) || n.startsWith('tmp-')),
  });
  // Stops: while the config, the first layer or the second layer (the first one unpacked) downloads; then at timed moments.
  const stops: Array<{ hold?: number; afterMs?: number }> = [
    { hold: 0 },
    { hold: 1 },
    { hold: 2 },
    { hold: 3 },
    { afterMs: 40 },
    { afterMs: 120 },
    { afterMs: 300 },
  ];
  for (const stop of stops) {
    if (stop.hold !== undefined) {
      const held = proxy.hold(stop.hold);
      void cd.call('PullImage', { image: { image: ref } }).catch(() => undefined);
      await held;
    } else {
      proxy.passThrough();
      void cd.call('PullImage', { image: { image: ref } }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, stop.afterMs));
    }
    await cd.kill();
    proxy.passThrough();
    cd = await cd.restart();
    const status = (await cd.call('ImageStatus', { image: { image: ref } })).image;
    if (status) {
      // The pull finished before the kill: then it is whole.
      assert.equal(status.id, pushed.configDigest);
    } else {
      assert.deepEqual(await leftovers(), { blobs: [], snapshots: [] }, `after a kill at ${JSON.stringify(stop)}`);
    }
    assert.equal((await cd.call('PullImage', { image: { image: ref } })).image_ref, pushed.configDigest);
    const { image } = await cd.call('ImageStatus', { image: { image: ref }, verbose: true });
    assert.equal(JSON.parse((await cd.call('ImageStatus', { image: { image: ref }, verbose: true })).info.info).layerChainIDs.length, 3);
    assert.equal(image.id, pushed.configDigest);
    await cd.call('RemoveImage', { image: { image: ref } });
    assert.deepEqual(await leftovers(), { blobs: [], snapshots: [] });
  }
});
