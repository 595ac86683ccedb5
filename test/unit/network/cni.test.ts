// CNI plumbing that needs no root: args, per-plugin runtimeConfig, plugin
// stdin config, network list loading, result IPs, bandwidth quantities, and
// the chain run against fake plugins (the in-process loopback).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CniAttachment,
  CniRunner,
  cniArgs,
  loadNetworkList,
  parseBandwidth,
  pluginConfig,
  resultIps,
  runtimeConfigFor,
} from '../../../src/network/cni.ts';
import { cniConfigStatus, findCniConfigFile } from '../../../src/network/cni-config.ts';

test('CNI_ARGS carries the Kubernetes pod identity', () => {
  assert.equal(
    cniArgs({ namespace: 'default', name: 'web-0', uid: 'u-1', sandboxId: 'abc' }),
    'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1',
  );
  assert.throws(() => cniArgs({ namespace: 'a;b', name: 'x', uid: 'u', sandboxId: 'i' }), /namespace/);
});

test('runtimeConfig holds only the capabilities a plugin declares', () => {
  const args = {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    dns: { servers: ['10.96.0.10'], searches: [], options: [] },
    ipRanges: [[{ subnet: '10.244.1.0/24' }]],
  };
  assert.deepEqual(runtimeConfigFor({ type: 'portmap', capabilities: { portMappings: true } }, args), { portMappings: args.portMappings });
  assert.deepEqual(runtimeConfigFor({ type: 'bridge' }, args), {});
  assert.deepEqual(runtimeConfigFor({ type: 'x', capabilities: { dns: true, ipRanges: true, bandwidth: true, portMappings: false } }, args), {
    dns: args.dns,
    ipRanges: args.ipRanges,
  });
  assert.deepEqual(runtimeConfigFor({ type: 'portmap', capabilities: { portMappings: true } }, { portMappings: [] }), {});
});

test('each plugin gets the list name and version, its runtimeConfig and the previous result', () => {
  const list = {
    cniVersion: '1.0.0',
    name: 'net',
    plugins: [
      { type: 'bridge', bridge: 'b0' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
  assert.deepEqual(pluginConfig(list, list.plugins[0]!, {}, undefined), { type: 'bridge', bridge: 'b0', cniVersion: '1.0.0', name: 'net' });
  const pm = [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }];
  assert.deepEqual(pluginConfig(list, list.plugins[1]!, { portMappings: pm }, prev), {
    type: 'portmap',
    capabilities: { portMappings: true },
    cniVersion: '1.0.0',
    name: 'net',
    runtimeConfig: { portMappings: pm },
    prevResult: prev,
  });
});

test('network lists load from .conflist, and single plugins from .conf; the first file wins', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-cni-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await findCniConfigFile(dir), undefined);
  assert.equal((await cniConfigStatus(() => dir).condition()).ready, false);
  await writeFile(join(dir, '20-b.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'single', type: 'bridge', bridge: 'x' }));
  await writeFile(join(dir, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'list', plugins: [{ type: 'loopback' }] }));
  await writeFile(join(dir, '05-ignored.txt'), 'not a config');
  assert.equal(await findCniConfigFile(dir), join(dir, '10-a.conflist'));
  assert.equal((await cniConfigStatus(() => dir).condition()).ready, true);
  assert.deepEqual(await loadNetworkList(join(dir, '20-b.conf')), { cniVersion: '0.4.0', name: 'single', plugins: [{ type: 'bridge', bridge: 'x' }] });
  assert.equal((await loadNetworkList(join(dir, '10-a.conflist'))).plugins.length, 1);
  await writeFile(join(dir, 'bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: '../../bin/sh' }] }));
  await assert.rejects(loadNetworkList(join(dir, 'bad.conflist')), /invalid plugin type/);
  await writeFile(join(dir, 'empty.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'e', plugins: [] }));
  await assert.rejects(loadNetworkList(join(dir, 'empty.conflist')), /no plugins/);
  await writeFile(join(dir, 'broken.conflist'), '{');
  await assert.rejects(loadNetworkList(join(dir, 'broken.conflist')), /not valid JSON/);
});

test('pod IPs come from sandbox interfaces, IPv4 first', () => {
  const result = {
    interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/ns' }],
    ips: [
      { address: 'fd00::2/64', interface: 2 },
      { address: '10.88.0.2/16', interface: 2, gateway: '10.88.0.1' },
      { address: '10.88.0.1/16', interface: 0 },
    ],
  };
  assert.deepEqual(resultIps(result), ['10.88.0.2', 'fd00::2']);
  assert.deepEqual(resultIps({ ips: [{ address: '10.1.0.3/24' }] }), ['10.1.0.3']);
  assert.deepEqual(resultIps({ ip4: { ip: '10.2.0.4/24' } }), ['10.2.0.4']);
  assert.deepEqual(resultIps(undefined), []);
});

test('bandwidth quantities become bits per second', () => {
  assert.equal(parseBandwidth('10M'), 10_000_000);
  assert.equal(parseBandwidth('1Gi'), 2 ** 30);
  assert.equal(parseBandwidth('500k'), 500_000);
  assert.equal(parseBandwidth('1000'), 1000);
  assert.throws(() => parseBandwidth('fast'));
});

test('rules tagged with a pod id are found in an iptables-save dump', async () => {
  const { splitRule, taggedRules } = await import('../../../src/network/iptables.ts');
  assert.deepEqual(splitRule('-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"n\\" id: \\"abc\\"" -j CNI-1'), [
    '-A',
    'POSTROUTING',
    '-s',
    '10.0.0.2/32',
    '-m',
    'comment',
    '--comment',
    'name: "n" id: "abc"',
    '-j',
    'CNI-1',
  ]);
  const dump = [
    '*nat',
    ':CNI-1 - [0:0]',
    '-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"n\\" id: \\"abc\\"" -j CNI-1',
    '-A CNI-1 -d 10.0.0.0/24 -m comment --comment "name: \\"n\\" id: \\"abc\\"" -j ACCEPT',
    '-A POSTROUTING -s 10.0.0.3/32 -m comment --comment "name: \\"n\\" id: \\"other\\"" -j CNI-2',
    'COMMIT',
  ].join('\n');
  const found = taggedRules(dump, 'abc');
  assert.equal(found.rules.length, 2);
  assert.deepEqual(found.rules[1], ['CNI-1', '-d', '10.0.0.0/24', '-m', 'comment', '--comment', 'name: "n" id: "abc"', '-j', 'ACCEPT']);
  assert.deepEqual(found.chains, ['CNI-1']);
});

/** Plugins that log each call to calls.log; "first" answers with a result. */
async function fakePlugins(t: { after: (fn: () => Promise<void>) => void }): Promise<{ dir: string; calls: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-cni-fake-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls.log');
  const result = JSON.stringify({ cniVersion: '1.0.0', ips: [{ address: '10.9.0.2/24' }] });
  await writeFile(join(dir, 'first'), `#!/bin/sh\necho "first $CNI_COMMAND" >> ${log}\necho '${result}'\n`, { mode: 0o755 });
  await writeFile(join(dir, 'loopback'), `#!/bin/sh\necho "loopback $CNI_COMMAND" >> ${log}\ncat > /dev/null\necho '${result}'\n`, { mode: 0o755 });
  const calls = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  return { dir, calls };
}

function attachmentOf(types: string[]): CniAttachment {
  return {
    confFile: 'test.conflist',
    list: { cniVersion: '1.0.0', name: 'test', plugins: types.map((type) => ({ type })) },
    containerId: 'c'.repeat(64),
    ifName: 'eth0',
    args: '',
    capabilities: {},
  };
}

test('a chained loopback plugin is done in-process unless builtin_loopback is off; a chain starting with it runs it', async (t) => {
  const { dir, calls } = await fakePlugins(t);
  const builtin = new CniRunner({ confDir: dir, binDirs: [dir], builtinLoopback: true });
  const chained = attachmentOf(['first', 'loopback']);
  const result = await builtin.add(chained, '/proc/self/ns/net');
  assert.deepEqual(result.ips, [{ address: '10.9.0.2/24' }], 'the result before it is the network result');
  chained.result = result;
  await builtin.del(chained, '/proc/self/ns/net');
  assert.deepEqual(await calls(), ['first ADD', 'first DEL']);

  const binary = new CniRunner({ confDir: dir, binDirs: [dir], builtinLoopback: false });
  await binary.add(chained, '/proc/self/ns/net');
  await binary.del(chained, '/proc/self/ns/net');
  assert.deepEqual((await calls()).slice(2), ['first ADD', 'loopback ADD', 'loopback DEL', 'first DEL']);

  const alone = attachmentOf(['loopback']);
  await builtin.add(alone, '/proc/self/ns/net');
  await builtin.del(alone, '/proc/self/ns/net');
  assert.deepEqual((await calls()).slice(6), ['loopback ADD', 'loopback DEL']);
});

test('a chained loopback plugin done in-process need not be installed', async (t) => {
  const { dir } = await fakePlugins(t);
  await rm(join(dir, 'loopback'));
  const list = attachmentOf(['first', 'loopback']).list;
  assert.deepEqual(await new CniRunner({ confDir: dir, binDirs: [dir], builtinLoopback: true }).missingPlugins(list), []);
  assert.deepEqual(await new CniRunner({ confDir: dir, binDirs: [dir], builtinLoopback: false }).missingPlugins(list), ['loopback']);
});
