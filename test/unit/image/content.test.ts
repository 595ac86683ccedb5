// The content store and credentials from PullImageRequest.auth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore, DigestMismatchError } from '../../../src/image/content.ts';
import { credentialsFrom } from '../../../src/image/service.ts';
import { parseChallenge } from '../../../src/image/registry.ts';
import { rangeStart } from '../../../src/image/pull.ts';
import { sha256 } from '../../helpers/fake-registry.ts';

async function store(t: { after(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-content-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const s = new ContentStore(dir);
  await s.load();
  return s;
}

test('a blob is stored only when digest and size match', async (t) => {
  const s = await store(t);
  const data = Buffer.from('hello blob');
  assert.equal(await s.write(sha256(data), data.length, Readable.from([data])), true);
  assert.equal(await s.has(sha256(data)), true);
  assert.equal(await s.write(sha256(data), data.length, Readable.from([data])), false, 'present blobs are not written again');
  const other = Buffer.from('other');
  await assert.rejects(s.write(sha256(data).replace(/.$/, '0'), other.length, Readable.from([other])), DigestMismatchError);
  await assert.rejects(s.write(sha256(other), other.length - 1, Readable.from([other])), /larger than its declared/);
  assert.deepEqual((await readdir(s.dir)).sort(), [sha256(data).slice(7)]);
  assert.throws(() => s.path('sha256:../../etc/passwd'), /invalid digest/);
});

test('an interrupted write continues from the bytes on disk', async (t) => {
  const s = await store(t);
  const data = Buffer.alloc(100_000, 1);
  const offsets: number[] = [];
  let kept = 0;
  await s.ingest(sha256(data), data.length, async (writer) => {
    const source = async (offset: number) => {
      offsets.push(offset);
      if (offsets.length === 1) {
        // A connection that dies after 40 000 bytes.
        const broken = new Readable({ read() {} });
        broken.push(data.subarray(0, 40_000));
        setTimeout(() => broken.destroy(new Error('connection reset')), 100);
        return { stream: broken, offset: 0 };
      }
      return { stream: Readable.from([data.subarray(offset)]), offset };
    };
    await assert.rejects(writer.fetch(source), /connection reset/);
    kept = await writer.offset();
    await writer.fetch(source);
  });
  // What reached the disk before the reset is kept (buffered bytes may be lost).
  assert.ok(kept > 0 && kept <= 40_000, String(kept));
  assert.deepEqual(offsets, [0, kept]);
  assert.equal(await s.has(sha256(data)), true);
});

test('PullImageRequest.auth: username/password, base64 auth, tokens; empty is none', () => {
  assert.equal(credentialsFrom(null), undefined);
  assert.equal(credentialsFrom({ username: '', password: '', auth: '', identity_token: '', registry_token: '' }), undefined);
  assert.deepEqual(credentialsFrom({ username: 'u', password: 'p' }), { username: 'u', password: 'p', identityToken: undefined, registryToken: undefined });
  assert.deepEqual(credentialsFrom({ auth: Buffer.from('bob:pa:ss').toString('base64') }), {
    username: 'bob',
    password: 'pa:ss',
    identityToken: undefined,
    registryToken: undefined,
  });
  assert.equal(credentialsFrom({ identity_token: 'refresh' })?.identityToken, 'refresh');
  assert.equal(credentialsFrom({ registry_token: 'bearer' })?.registryToken, 'bearer');
});

test('WWW-Authenticate challenges and Content-Range', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
  });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.equal(rangeStart('bytes 100-199/200'), 100);
  assert.equal(rangeStart(null), undefined);
});
