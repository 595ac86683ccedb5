// Container resources between CRI, OCI and NRI.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { criToNriResources, nriToCriResources, ociToNriResources } from '../../../src/nri/resources.ts';

test('CRI resources become NRI resources and back', () => {
  const nri = criToNriResources({
    cpu_shares: 512,
    cpu_quota: 50000,
    cpu_period: 100000,
    memory_limit_in_bytes: 1 << 28,
    cpuset_cpus: '0',
    hugepage_limits: [],
    unified: {},
  } as never);
  assert.deepEqual(nri.cpu!.shares, { value: 512 });
  assert.deepEqual(nri.memory!.limit, { value: 1 << 28 });
  const back = nriToCriResources({ ...nri, memory: { limit: { value: 1 << 29 } } }, { cpu_shares: 2, oom_score_adj: 5 });
  assert.equal(back.resources.memory_limit_in_bytes, 1 << 29);
  assert.equal(back.resources.cpu_shares, 512);
  assert.equal(back.resources.oom_score_adj, 5);
  assert.deepEqual(back.unsupported, []);
  assert.deepEqual(nriToCriResources({ pids: { limit: 3 } }, null).unsupported, ['pids limit']);
});

test('OCI resources become NRI resources with absent fields left unset', () => {
  const nri = ociToNriResources({ memory: { limit: 100 }, pids: { limit: 7 } });
  assert.deepEqual(nri.memory!.limit, { value: 100 });
  assert.equal(nri.memory!.swap, null);
  assert.equal(nri.cpu, null);
  assert.deepEqual(nri.pids, { limit: 7 });
});
