// Registry hosts configuration in containerd's hosts.toml format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultEndpoint, endpointsFor, parseHostsToml } from '../../../src/image/hosts.ts';

test('without configuration a host is its own HTTPS endpoint; Docker Hub is registry-1.docker.io', () => {
  assert.equal(defaultEndpoint('docker.io').url, 'https://registry-1.docker.io/v2');
  assert.equal(defaultEndpoint('quay.io').url, 'https://quay.io/v2');
  assert.equal(defaultEndpoint('quay.io').httpFallback, false);
  // Loopback registries may answer plain HTTP, as with containerd.
  assert.equal(defaultEndpoint('127.0.0.1:5000').httpFallback, true);
  assert.equal(defaultEndpoint('localhost:5000').httpFallback, true);
});

test('mirrors come first, in file order, then the server', () => {
  const eps = parseHostsToml(
    `
server = "https://registry-1.docker.io"
[host."http://10.0.0.1:5000"]
  capabilities = ["pull"]
[host."https://mirror.example.com/v2"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = "/etc/certs/mirror.pem"
`,
    'docker.io',
  );
  assert.deepEqual(
    eps.map((e) => e.url),
    ['http://10.0.0.1:5000/v2', 'https://mirror.example.com/v2', 'https://registry-1.docker.io/v2'],
  );
  assert.deepEqual(eps[0]!.capabilities, ['pull']);
  assert.equal(eps[1]!.skipVerify, true);
  assert.equal(eps[1]!.ca, '/etc/certs/mirror.pem');
  assert.equal(eps[0]!.host, '10.0.0.1:5000');
  assert.equal(
    eps.every((e) => !e.httpFallback),
    true,
  );
});

test('a file without server falls back to the default upstream', () => {
  const eps = parseHostsToml('[host."https://m.example"]\ncapabilities = ["pull", "resolve"]\n', 'quay.io');
  assert.deepEqual(
    eps.map((e) => e.url),
    ['https://m.example/v2', 'https://quay.io/v2'],
  );
});

test('endpointsFor reads <dir>/<host>/hosts.toml, else _default, else the host itself', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-hosts-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'reg.example:5000'), { recursive: true });
  await writeFile(join(dir, 'reg.example:5000', 'hosts.toml'), 'server = "http://reg.example:5000"\n');
  assert.deepEqual(
    (await endpointsFor(dir, 'reg.example:5000')).map((e) => e.url),
    ['http://reg.example:5000/v2'],
  );
  assert.deepEqual(
    (await endpointsFor(dir, 'other.example')).map((e) => e.url),
    ['https://other.example/v2'],
  );
  await mkdir(join(dir, '_default'));
  await writeFile(join(dir, '_default', 'hosts.toml'), '[host."https://catch-all.example"]\n');
  assert.deepEqual(
    (await endpointsFor(dir, 'other.example')).map((e) => e.url),
    ['https://catch-all.example/v2', 'https://other.example/v2'],
  );
  assert.deepEqual(
    (await endpointsFor('', 'x.example')).map((e) => e.url),
    ['https://x.example/v2'],
  );
  assert.deepEqual(
    (await endpointsFor(join(dir, 'absent'), 'x.example')).map((e) => e.url),
    ['https://x.example/v2'],
  );
});

test('relative certificate paths are relative to the hosts.toml directory; headers apply to requests', () => {
  const eps = parseHostsToml(
    `
server = "https://reg.example"
ca = "ca.pem"
client = [["client.crt", "/abs/client.key"]]
[header]
  x-custom = "a"
[host."https://m.example"]
  ca = ["/etc/ssl/m.pem"]
  client = "both.pem"
  [host."https://m.example".header]
    x-custom = ["b", "c"]
`,
    'reg.example',
    '/etc/tscri/certs.d/reg.example',
  );
  assert.equal(eps[0]!.ca, '/etc/ssl/m.pem');
  assert.deepEqual(eps[0]!.client, { cert: '/etc/tscri/certs.d/reg.example/both.pem', key: '/etc/tscri/certs.d/reg.example/both.pem' });
  assert.deepEqual(eps[0]!.headers, { 'x-custom': 'b, c' });
  assert.equal(eps[1]!.ca, '/etc/tscri/certs.d/reg.example/ca.pem');
  assert.deepEqual(eps[1]!.client, { cert: '/etc/tscri/certs.d/reg.example/client.crt', key: '/abs/client.key' });
  assert.deepEqual(eps[1]!.headers, { 'x-custom': 'a' });
});
