// The pure parts of pod sandboxes: resolv.conf and hosts, hostnames, sysctl
// classification, list filters and label selectors, oom_score_adj clamping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildHosts, buildResolvConf, checkHostname } from '../../../src/sandbox/files.ts';
import { checkSysctls, sysctlNamespace, sysctlPath } from '../../../src/sandbox/sysctl.ts';
import { filterItems, matchesLabels } from '../../../src/sandbox/filter.ts';
import { clampOomScoreAdj } from '../../../src/sandbox/oom.ts';
import { clampOom } from '../../../src/oci/oom.ts';
import { readFileSync } from 'node:fs';

test('resolv.conf from dns_config: search, nameservers, options; nothing asked means the host file', () => {
  assert.equal(
    buildResolvConf({ servers: ['10.96.0.10', 'fd00::a'], searches: ['default.svc.cluster.local', 'cluster.local'], options: ['ndots:5', 'timeout:2'] }),
    'search default.svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5 timeout:2\n',
  );
  assert.equal(buildResolvConf({ servers: ['1.1.1.1'], searches: [], options: [] }), 'nameserver 1.1.1.1\n');
  assert.equal(buildResolvConf({ servers: [], searches: [], options: [] }), undefined);
  assert.equal(buildResolvConf(null), undefined);
  assert.throws(() => buildResolvConf({ servers: ['1.1.1.1\nnameserver 6.6.6.6'], searches: [], options: [] }), /one word/);
  assert.throws(() => buildResolvConf({ servers: [], searches: ['a b'], options: [] }), /search domain/);
});

test('hosts lists localhost and the pod name on every pod IP', () => {
  const hosts = buildHosts('web-0', ['10.88.0.5', 'fd00::5']);
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost\n/);
  assert.match(hosts, /\n10\.88\.0\.5\tweb-0\n/);
  assert.match(hosts, /\nfd00::5\tweb-0\n$/);
});

test('hostnames follow RFC 1123', () => {
  checkHostname('web-0');
  checkHostname('a.b.c');
  assert.throws(() => checkHostname('-bad'));
  assert.throws(() => checkHostname('has space'));
  assert.throws(() => checkHostname('x'.repeat(65)));
});

test('sysctls are classified by namespace and refused where the pod shares the host', () => {
  assert.equal(sysctlNamespace('net.ipv4.ip_forward'), 'net');
  assert.equal(sysctlNamespace('net/ipv4/conf/eth0.100/rp_filter'), 'net');
  assert.equal(sysctlNamespace('kernel.shmmax'), 'ipc');
  assert.equal(sysctlNamespace('kernel.shm_rmid_forced'), 'ipc');
  assert.equal(sysctlNamespace('kernel.msgmax'), 'ipc');
  assert.equal(sysctlNamespace('kernel.sem'), 'ipc');
  assert.equal(sysctlNamespace('fs.mqueue.msg_max'), 'ipc');
  assert.equal(sysctlNamespace('kernel.pid_max'), undefined);
  assert.equal(sysctlNamespace('vm.swappiness'), undefined);
  assert.equal(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  assert.equal(sysctlPath('net/ipv4/conf/eth0.100/rp_filter'), '/proc/sys/net/ipv4/conf/eth0.100/rp_filter');
  assert.throws(() => sysctlPath('net/../../etc/passwd'), /invalid sysctl/);
  assert.throws(() => sysctlPath('net..x'), /invalid sysctl/);

  assert.deepEqual(checkSysctls({ 'net.ipv4.ping_group_range': '0 2147483647', 'kernel.sem': '250 32000 32 128' }, { net: true, ipc: true }), [
    ['/proc/sys/net/ipv4/ping_group_range', '0 2147483647'],
    ['/proc/sys/kernel/sem', '250 32000 32 128'],
  ]);
  assert.throws(() => checkSysctls({ 'net.ipv4.ip_forward': '1' }, { net: false, ipc: true }), /host-network/);
  assert.throws(() => checkSysctls({ 'kernel.shmmax': '1' }, { net: true, ipc: false }), /host-IPC/);
  assert.throws(() => checkSysctls({ 'kernel.pid_max': '1' }, { net: true, ipc: true }), /not namespaced/);
  assert.throws(() => checkSysctls({ 'net.core.somaxconn': '1\n2' }, { net: true, ipc: true }), /invalid value/);
});

test('list filters: id prefix, state and label selector all apply', () => {
  const items: Array<{ id: string; state: string; labels: Record<string, string> }> = [
    { id: 'abc123', state: 'SANDBOX_READY', labels: { app: 'a', tier: 'web' } },
    { id: 'abd456', state: 'SANDBOX_NOTREADY', labels: { app: 'b', tier: 'web' } },
    { id: 'fff789', state: 'SANDBOX_READY', labels: {} },
  ];
  const ids = (f: any) => filterItems(items, f).map((i) => i.id);
  assert.deepEqual(ids(null), ['abc123', 'abd456', 'fff789']);
  assert.deepEqual(ids({ id: 'ab', state: null, label_selector: {} }), ['abc123', 'abd456']);
  assert.deepEqual(ids({ id: 'abc123', state: null, label_selector: {} }), ['abc123']);
  assert.deepEqual(ids({ id: '', state: { state: 'SANDBOX_READY' }, label_selector: {} }), ['abc123', 'fff789']);
  assert.deepEqual(ids({ id: '', state: null, label_selector: { tier: 'web' } }), ['abc123', 'abd456']);
  assert.deepEqual(ids({ id: 'ab', state: { state: 'SANDBOX_NOTREADY' }, label_selector: { tier: 'web' } }), ['abd456']);
  assert.deepEqual(ids({ id: '', state: null, label_selector: { tier: 'web', app: 'c' } }), []);
  assert.equal(matchesLabels({ a: '1' }, {}), true);
  assert.equal(matchesLabels({ a: '1' }, { a: '' }), false);
});

test('oom_score_adj is bounded and, when restricted, never below the daemon own value', () => {
  assert.equal(clampOom(-998, 0, true), 0);
  assert.equal(clampOom(-998, -500, true), -500);
  assert.equal(clampOom(500, 0, true), 500);
  assert.equal(clampOom(-998, 0, false), -998);
  assert.equal(clampOom(5000, 0, false), 1000);
  assert.equal(clampOom(-5000, -2000, false), -1000);
  const own = Number(readFileSync('/proc/self/oom_score_adj', 'utf8'));
  assert.ok(clampOomScoreAdj(-1000) >= own);
  assert.equal(clampOomScoreAdj(1000), 1000);
});
