// NRI adjustments applied to an OCI spec, and the ones tscri refuses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyAdjustment, type AdjustableSpec } from '../../../src/nri/spec.ts';

const options = { clampOomScoreAdj: (v: number) => Math.max(v, -500) };

function spec(): AdjustableSpec {
  return {
    annotations: { keep: '1', drop: '2' },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/old', type: 'bind', source: '/x', options: ['rbind'] },
    ],
    process: { args: ['sleep', '1'], env: ['PATH=/bin', 'GONE=1'] },
    linux: {
      cgroupsPath: '/tscri/c1',
      namespaces: [{ type: 'mount' }, { type: 'network', path: '/run/netns/x' }],
      resources: { devices: [{ allow: false, access: 'rwm' }] },
    },
  };
}

test('annotations, mounts, env, args, hooks, rlimits and the OOM score are applied', () => {
  const s = spec();
  applyAdjustment(
    s,
    {
      annotations: { added: 'yes', '-drop': '' },
      mounts: [{ destination: '/data', source: '/srv', type: 'bind', options: ['rbind', 'ro'] }, { destination: '-/old' }],
      env: [{ key: 'NRI', value: 'on' }, { key: '-GONE' }],
      args: ['sh', '-c', 'true'],
      hooks: { create_runtime: [{ path: '/usr/bin/hook', args: ['hook', 'x'], timeout: { value: 5 } }] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 512 }],
      linux: { oom_score_adj: { value: -900 }, sysctl: { 'net.ipv4.ip_forward': '1' } },
    },
    options,
  );
  assert.deepEqual(s.annotations, { keep: '1', added: 'yes' });
  assert.deepEqual(
    s.mounts!.map((m) => m.destination),
    ['/proc', '/data'],
  );
  assert.deepEqual(s.process!.env, ['PATH=/bin', 'NRI=on']);
  assert.deepEqual(s.process!.args, ['sh', '-c', 'true']);
  assert.deepEqual(s.hooks!.createRuntime, [{ path: '/usr/bin/hook', args: ['hook', 'x'], timeout: 5 }]);
  assert.deepEqual(s.process!.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 512 }]);
  assert.equal(s.process!.oomScoreAdj, -500);
  assert.deepEqual(s.linux!.sysctl, { 'net.ipv4.ip_forward': '1' });
});

test('devices get a device cgroup rule; resources land in the OCI fields', () => {
  const s = spec();
  applyAdjustment(
    s,
    {
      linux: {
        devices: [{ path: '/dev/nri0', type: 'c', major: 1, minor: 3, file_mode: { value: 0o666 } }],
        resources: {
          memory: { limit: { value: 64 << 20 } },
          cpu: { shares: { value: 512 }, cpus: '0' },
          pids: { limit: 42 },
          hugepage_limits: [{ page_size: '2MB', limit: 0 }],
        },
      },
    },
    options,
  );
  assert.deepEqual(s.linux!.devices, [{ path: '/dev/nri0', type: 'c', major: 1, minor: 3, fileMode: 0o666 }]);
  assert.deepEqual(s.linux!.resources!.devices!.at(-1), { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });
  assert.deepEqual(s.linux!.resources!.memory, { limit: 64 << 20 });
  assert.deepEqual(s.linux!.resources!.cpu, { shares: 512, cpus: '0' });
  assert.deepEqual(s.linux!.resources!.pids, { limit: 42 });
});

test('what tscri cannot carry out, and malformed entries, are refused by name', () => {
  assert.throws(() => applyAdjustment(spec(), { linux: { scheduler: { policy: 'SCHED_FIFO' } } }, options), /scheduling policy, which tscri does not support/);
  assert.throws(() => applyAdjustment(spec(), { CDI_devices: [{ name: 'vendor.com/gpu=0' }] }, options), /CDI devices/);
  assert.throws(() => applyAdjustment(spec(), { mounts: [{ destination: 'relative' }] }, options), /relative destination/);
  assert.throws(() => applyAdjustment(spec(), { env: [{ key: 'A=B', value: 'x' }] }, options), /invalid name/);
  assert.throws(() => applyAdjustment(spec(), { linux: { devices: [{ path: '/etc/passwd', type: 'c' }] } }, options), /outside \/dev/);
  assert.throws(() => applyAdjustment(spec(), { hooks: { prestart: [{ path: 'hook' }] } }, options), /relative path/);
});
