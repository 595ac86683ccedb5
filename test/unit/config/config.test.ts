import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig, loadConfig, socketPath } from '../../../src/config/config.ts';

const SHIPPED = fileURLToPath(new URL('../../../runtime/tscri.toml', import.meta.url));

async function withConfig(text: string, fn: (file: string) => void | Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-config-'));
  try {
    const file = join(dir, 'tscri.toml');
    await writeFile(file, text);
    await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('defaults apply without a config file', () => {
  const config = loadConfig({});
  assert.equal(config.listen, 'unix:///run/tscri/tscri.sock');
  assert.equal(config.root, '/var/lib/tscri');
  assert.equal(config.state, '/run/tscri');
  assert.equal(config.runtime.default_handler, 'runc');
});

test('the shipped runtime/tscri.toml documents exactly the defaults', () => {
  assert.deepEqual(loadConfig({ config: SHIPPED }), defaultConfig());
});

test('the file overrides defaults and flags override the file', async () => {
  await withConfig('root = "/srv/a"\nlog_level = "warn"\n[cni]\nconf_dir = "/x"\n', (file) => {
    const config = loadConfig({ config: file, root: '/srv/b' });
    assert.equal(config.root, '/srv/b');
    assert.equal(config.log_level, 'warn');
    assert.equal(config.cni.conf_dir, '/x');
    assert.deepEqual(config.cni.bin_dirs, ['/opt/cni/bin', '/usr/lib/cni']);
  });
});

test('new runtime handlers and registry credentials can be added', async () => {
  const text = '[runtime.handlers.kata]\npath = "/usr/bin/kata-runtime"\n[registry.auths."r.example"]\nusername = "u"\npassword = "p"\n';
  await withConfig(text, (file) => {
    const config = loadConfig({ config: file });
    assert.equal(config.runtime.handlers.kata!.path, '/usr/bin/kata-runtime');
    assert.equal(config.runtime.handlers.kata!.root, '');
    assert.equal(config.registry.auths['r.example']!.username, 'u');
  });
});

test('unknown keys, wrong types and bad values are rejected with the key named', async () => {
  await withConfig('lisen = "x"', (file) => assert.throws(() => loadConfig({ config: file }), /unknown config key lisen/));
  await withConfig('[pod]\nshm_size = "big"', (file) => assert.throws(() => loadConfig({ config: file }), /pod\.shm_size must be a number/));
  await withConfig('[cni]\nbin_dirs = [1]', (file) => assert.throws(() => loadConfig({ config: file }), /cni\.bin_dirs must be a list of strings/));
  await withConfig('[cni]\nbuiltin_loopback = "yes"', (file) => assert.throws(() => loadConfig({ config: file }), /cni\.builtin_loopback must be a boolean/));
  await withConfig('cgroup_driver = "other"', (file) => assert.throws(() => loadConfig({ config: file }), /cgroup_driver must be cgroupfs or systemd/));
  await withConfig('[runtime]\ndefault_handler = "nope"', (file) => assert.throws(() => loadConfig({ config: file }), /default_handler nope/));
  await withConfig('root = ', (file) => assert.throws(() => loadConfig({ config: file }), /not valid TOML/));
  assert.throws(() => loadConfig({ config: '/nonexistent/tscri.toml' }), /cannot read config file/);
  assert.throws(() => loadConfig({ listen: 'tcp://1.2.3.4:5' }), /unix socket address/);
  assert.throws(() => loadConfig({ 'log-level': 'loud' }), /log_level must be one of/);
});

test('socketPath strips the scheme', () => {
  assert.equal(socketPath('unix:///run/x.sock'), '/run/x.sock');
});
