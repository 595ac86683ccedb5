// Reference normalisation as kubelet and crictl expect it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asImageId, formatReference, parseReference, ReferenceError } from '../../../src/image/reference.ts';

const D = `sha256:${'a'.repeat(64)}`;
const norm = (s: string) => formatReference(parseReference(s));

test('short Docker Hub names get docker.io, library/ and :latest', () => {
  assert.equal(norm('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(norm('busybox:1.36'), 'docker.io/library/busybox:1.36');
  assert.equal(norm('library/busybox'), 'docker.io/library/busybox:latest');
  assert.equal(norm('docker.io/busybox'), 'docker.io/library/busybox:latest');
  assert.equal(norm('index.docker.io/library/busybox'), 'docker.io/library/busybox:latest');
  assert.equal(norm('someone/tool:v2'), 'docker.io/someone/tool:v2');
  assert.equal(norm('  busybox  '), 'docker.io/library/busybox:latest');
});

test('hosts with dots, ports, localhost or IPv6 are registries', () => {
  assert.equal(norm('quay.io/a/b:v1'), 'quay.io/a/b:v1');
  assert.equal(norm('localhost/foo'), 'localhost/foo:latest');
  assert.equal(norm('localhost:5000/foo'), 'localhost:5000/foo:latest');
  assert.equal(norm('registry:5000/foo/bar:1'), 'registry:5000/foo/bar:1');
  assert.equal(norm('127.0.0.1:5000/a/b'), '127.0.0.1:5000/a/b:latest');
  assert.equal(norm('[::1]:5000/foo'), '[::1]:5000/foo:latest');
  const r = parseReference('registry.example.com:8443/team/app:1.0');
  assert.deepEqual(r, { domain: 'registry.example.com:8443', path: 'team/app', tag: '1.0', digest: undefined });
});

test('digest references keep no implicit tag; tag+digest keeps both', () => {
  assert.deepEqual(parseReference(`busybox@${D}`), { domain: 'docker.io', path: 'library/busybox', tag: undefined, digest: D });
  assert.equal(norm(`busybox@${D}`), `docker.io/library/busybox@${D}`);
  assert.equal(norm(`busybox:1.36@${D}`), `docker.io/library/busybox:1.36@${D}`);
  assert.equal(norm(`localhost:5000/x@${D}`), `localhost:5000/x@${D}`);
});

test('invalid references are rejected with a clear message', () => {
  for (const bad of ['', 'UPPER/Case', 'busybox:', 'busybox@sha256:abc', 'a b', 'busybox:-bad', 'x/../y', `bad@md5:${'a'.repeat(32)}`]) {
    assert.throws(() => parseReference(bad), ReferenceError, bad);
  }
});

test('image ids with or without the sha256: prefix', () => {
  assert.equal(asImageId('a'.repeat(64)), D);
  assert.equal(asImageId(D), D);
  assert.equal(asImageId('abc'), undefined);
  assert.equal(asImageId('busybox'), undefined);
});
