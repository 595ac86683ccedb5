// Docker credential helpers and auth files: the protocol, what goes to which
// host, and helpers or files that answer wrongly (huge, not JSON, hanging).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialSourceError, helperCredentials, readAuthFile } from '../../../src/image/cred-helper.ts';
import { lookupCredentials } from '../../../src/image/credentials.ts';
import { credentialsFrom } from '../../../src/image/service.ts';

async function helpers(t: { after(fn: () => Promise<void>): void }, scripts: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-helpers-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, body] of Object.entries(scripts)) {
    await writeFile(join(dir, `docker-credential-${name}`), `#!/bin/sh\n${body.replaceAll('$DIR', dir)}\n`);
    await chmod(join(dir, `docker-credential-${name}`), 0o755);
  }
  return dir;
}

test('a helper is asked with the server on stdin; its Username/Secret or identity token are the credentials', async (t) => {
  const dir = await helpers(t, {
    good: 'cat > $DIR/asked; echo \'{"ServerURL":"x","Username":"robot","Secret":"s3cret"}\'',
    token: 'echo \'{"Username":"<token>","Secret":"refresh-me"}\'',
    none: 'echo "credentials not found in native keychain"; exit 1',
    empty: 'echo \'{"Username":"","Secret":""}\'',
  });
  assert.deepEqual(await helperCredentials('good', 'registry.example:5000', { path: dir }), { username: 'robot', password: 's3cret' });
  assert.equal(await readFile(join(dir, 'asked'), 'utf8'), 'registry.example:5000');
  assert.deepEqual(await helperCredentials('token', 'r', { path: dir }), { identityToken: 'refresh-me' });
  assert.equal(await helperCredentials('none', 'r', { path: dir }), undefined);
  assert.equal(await helperCredentials('empty', 'r', { path: dir }), undefined);
});

test('hostile or broken helpers fail with a message that quotes nothing they said', async (t) => {
  const dir = await helpers(t, {
    huge: 'head -c 50000000 /dev/zero | tr "\\0" "a"',
    prose: 'echo "password=hunter2"',
    typed: 'echo \'{"Username":1,"Secret":"hunter2"}\'',
    array: 'echo \'["hunter2"]\'',
    crash: 'echo "hunter2" >&2; exit 3',
    hang: 'exec sleep 60',
  });
  const cases: Array<[string, RegExp]> = [
    ['huge', /wrote more than 64 KiB/],
    ['prose', /not JSON/],
    ['typed', /without a Username and Secret string/],
    ['array', /without a Username and Secret string/],
    ['crash', /failed for r \(exit code 3\)/],
    ['hang', /did not answer within 0.3 s/],
    ['../../bin/sh', /is not valid/],
    ['absent', /docker-credential-absent is not installed/],
  ];
  for (const [name, message] of cases) {
    const err = await helperCredentials(name, 'r', { path: dir, timeoutMs: 300 }).catch((e) => e);
    assert.ok(err instanceof CredentialSourceError, `${name}: ${err}`);
    assert.match(err.message, message, name);
    assert.ok(!err.message.includes('hunter2') && err.message.length < 300, `${name}: ${err.message}`);
  }
});

test('auth files: auths, credHelpers and credsStore are read; malformed files are refused without quoting them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-authfile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'auth.json');
  assert.deepEqual(await readAuthFile(join(dir, 'absent.json')), { auths: {}, credHelpers: {}, credsStore: '' });
  await writeFile(
    file,
    JSON.stringify({ auths: { 'r.example': { auth: Buffer.from('u:p').toString('base64') } }, credHelpers: { 'h.example': 'good' }, credsStore: 'store' }),
  );
  const read = await readAuthFile(file);
  assert.equal(read.credHelpers['h.example'], 'good');
  assert.equal(read.credsStore, 'store');
  for (const bad of [
    '{"auths": {"x": {"auth": "hunter2"',
    '{"auths": {"x": {"auth": 5}}, "p": "hunter2"}',
    '["hunter2"]',
    '{"credHelpers": {"x": ["hunter2"]}}',
    '{"credsStore": {"hunter2": 1}}',
  ]) {
    await writeFile(file, bad);
    const err = await readAuthFile(file).catch((e) => e);
    assert.ok(err instanceof CredentialSourceError, bad);
    assert.ok(!err.message.includes('hunter2'), err.message);
  }
  await writeFile(file, Buffer.alloc(2 * 1024 * 1024, 0x20));
  assert.match((await readAuthFile(file).catch((e) => e)).message, /larger than 1 MiB/);
});

test('helpers are asked for the host the credentials go to, after the request and [registry.auths]', async (t) => {
  const dir = await helpers(t, {
    echo: 'read s; printf \'{"Username":"for:%s","Secret":"x"}\' "$s"',
  });
  const before = process.env.PATH;
  process.env.PATH = `${dir}:${before}`;
  t.after(() => {
    process.env.PATH = before;
  });
  const authFile = join(dir, 'config.json');
  await writeFile(authFile, JSON.stringify({ auths: { 'https://filed.example': { auth: Buffer.from('filed:pw').toString('base64') } } }));
  const sources = (extra: object = {}) => ({
    configured: { 'static.example': { username: 'static', password: 'p', auth: '', identity_token: '' } },
    decode: credentialsFrom,
    helpers: { credHelpers: { 'ecr.example': 'echo' }, credsStore: '', authFile },
    ...extra,
  });
  const own = (host: string) => ({ host, ownServer: true });
  const mirror = (host: string) => ({ host, ownServer: false });
  // printf gets no newline from stdin: `read` fails but keeps what it read.
  assert.equal((await lookupCredentials(own('ecr.example'), 'ecr.example', sources())).username, 'for:ecr.example');
  assert.equal(
    (await lookupCredentials(own('ecr.example'), 'ecr.example', sources({ requested: { username: 'asked', password: 'p' } }))).username,
    'asked',
    'the request comes first',
  );
  assert.equal((await lookupCredentials(own('static.example'), 'static.example', sources())).username, 'static', '[registry.auths] before helpers');
  assert.equal((await lookupCredentials(own('filed.example'), 'filed.example', sources())).username, 'filed', "the auth file's auths");
  assert.deepEqual(await lookupCredentials(own('other.example'), 'other.example', sources()), {}, 'no helper for this host: anonymous');
  assert.deepEqual(
    await lookupCredentials(mirror('mirror.example'), 'ecr.example', sources()),
    {},
    "a mirror of ecr.example gets nothing of ecr.example's helper",
  );
  assert.equal(
    (await lookupCredentials(mirror('ecr.example'), 'victim.example', sources())).username,
    'for:ecr.example',
    'a mirror is asked about under its own name',
  );
  const store = sources({ helpers: { credHelpers: {}, credsStore: 'echo', authFile: '' } });
  assert.equal(
    (await lookupCredentials(own('registry-1.docker.io'), 'docker.io', store)).username,
    'for:https://index.docker.io/v1/',
    'Docker Hub under its helper address',
  );
});
