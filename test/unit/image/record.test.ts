// Image records: the config's User, the CRI view, platform choice from an index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlatform, imageUser, toCriImage, type ImageRecord } from '../../../src/image/record.ts';

test('User gives a uid or a username', () => {
  assert.deepEqual(imageUser(undefined), { username: '' });
  assert.deepEqual(imageUser(''), { username: '' });
  assert.deepEqual(imageUser('1000'), { uid: 1000, username: '' });
  assert.deepEqual(imageUser('1000:1000'), { uid: 1000, username: '' });
  assert.deepEqual(imageUser('0'), { uid: 0, username: '' });
  assert.deepEqual(imageUser('nginx'), { username: 'nginx' });
  assert.deepEqual(imageUser('nginx:www'), { username: 'nginx' });
});

test('the CRI image carries id, tags, digests, size, uid and spec', () => {
  const r: ImageRecord = {
    id: `sha256:${'b'.repeat(64)}`,
    repoTags: ['docker.io/library/x:1'],
    repoDigests: [`docker.io/library/x@sha256:${'c'.repeat(64)}`],
    size: 42,
    config: { config: { User: '65534' }, rootfs: { diff_ids: [] } },
    manifestDigest: '',
    layers: [],
    diffIds: [],
    chainIds: [],
    pinned: true,
    annotations: { a: 'b' },
    pulledAt: 0,
  };
  const img = toCriImage(r);
  assert.equal(img.id, r.id);
  assert.deepEqual(img.uid, { value: 65534 });
  assert.equal(img.username, '');
  assert.equal(img.size, 42);
  assert.equal(img.pinned, true);
  assert.deepEqual(img.spec?.annotations, { a: 'b' });
  assert.equal(toCriImage({ ...r, config: { config: { User: 'www' }, rootfs: { diff_ids: [] } } }).uid, null);
});

test('an index resolves to the host platform, preferring the matching variant', () => {
  const m = (digest: string, architecture: string, variant?: string, os = 'linux') => ({ digest, platform: { os, architecture, variant } });
  const host = { os: 'linux', architecture: 'arm64', variant: 'v8' };
  assert.equal(choosePlatform([m('a', 'amd64'), m('b', 'arm64', 'v8')], host)?.digest, 'b');
  assert.equal(choosePlatform([m('a', 'arm64', 'v7x'), m('b', 'arm64', 'v8')], host)?.digest, 'b');
  assert.equal(choosePlatform([m('a', 'arm64')], host)?.digest, 'a');
  assert.equal(choosePlatform([m('a', 'amd64', undefined, 'windows'), m('b', 'amd64')], { os: 'linux', architecture: 'amd64' })?.digest, 'b');
  assert.equal(choosePlatform([m('a', 'amd64'), m('b', 's390x')], host), undefined);
  assert.equal(choosePlatform([], host), undefined);
});
