import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../../src/config/config.ts';
import { applyReload } from '../../../src/config/reload.ts';

test('reload takes over log level, registries, CNI and image settings in place', () => {
  const current = defaultConfig();
  const cni = current.cni;
  const next = defaultConfig();
  next.log_level = 'debug';
  next.cni.conf_dir = '/other';
  next.registry.config_path = '/etc/x';
  next.root = '/elsewhere';
  const result = applyReload(current, next);
  assert.deepEqual(result.applied.sort(), ['cni', 'log_level', 'registry']);
  assert.deepEqual(result.needRestart, ['root']);
  assert.equal(current.log_level, 'debug');
  assert.equal(current.cni.conf_dir, '/other');
  assert.equal(current.root, '/var/lib/tscri');
  assert.notEqual(current.cni, cni);
});

test('an unchanged config applies nothing', () => {
  assert.deepEqual(applyReload(defaultConfig(), defaultConfig()), { applied: [], needRestart: [] });
});
