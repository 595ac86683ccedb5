// Which credentials go to which host: the registry's to its own server only,
// a mirror's by its own name only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credentialsFor, serverHost } from '../../../src/image/credentials.ts';
import { parseHostsToml } from '../../../src/image/hosts.ts';
import { credentialsFrom } from '../../../src/image/service.ts';

const configured = {
  'victim.local': { username: 'v', password: 'victim', auth: '', identity_token: '' },
  'mirror.example:5000': { username: 'm', password: 'mirror', auth: '', identity_token: '' },
  'https://index.docker.io/v1/': { username: 'd', password: 'hub', auth: '', identity_token: '' },
};
const sources = (requested?: object) => ({ requested, configured, decode: credentialsFrom });
const own = (host: string) => ({ host, ownServer: true });
const mirror = (host: string) => ({ host, ownServer: false });

test('the registry gets the request credentials, else its configured ones; a mirror only its own', () => {
  const asked = { username: 'r', password: 'requested' };
  assert.deepEqual(credentialsFor(own('victim.local'), 'victim.local', sources(asked)), asked);
  assert.equal(credentialsFor(own('victim.local'), 'victim.local', sources()).password, 'victim');
  assert.deepEqual(credentialsFor(mirror('evil.example'), 'victim.local', sources(asked)), {});
  assert.equal(credentialsFor(mirror('mirror.example:5000'), 'victim.local', sources(asked)).password, 'mirror');
  // Request credentials given for another server are not used.
  assert.equal(credentialsFor(own('victim.local'), 'victim.local', sources({ ...asked, serverAddress: 'https://other.example/v1/' })).password, 'victim');
  assert.equal(credentialsFor(own('victim.local'), 'victim.local', sources({ ...asked, serverAddress: 'victim.local' })).password, 'requested');
  // Docker Hub goes by several names.
  assert.equal(credentialsFor(own('registry-1.docker.io'), 'docker.io', sources()).password, 'hub');
  assert.equal(serverHost('https://index.docker.io/v1/'), 'index.docker.io');
});

test("only the server of a registry's own hosts.toml is its own server", () => {
  const text = 'server = "https://victim.local"\n[host."https://mirror.example:5000"]\ncapabilities = ["pull"]\n';
  assert.deepEqual(
    parseHostsToml(text, 'victim.local').map((e) => [e.host, e.ownServer]),
    [
      ['mirror.example:5000', false],
      ['victim.local', true],
    ],
  );
  assert.deepEqual(
    parseHostsToml(text, 'victim.local', '/', false).map((e) => e.ownServer),
    [false, false],
    'a server from _default serves every registry',
  );
  assert.equal(parseHostsToml('', 'victim.local', '/', false)[0]!.ownServer, true, 'without a server, the registry itself');
});
