// Pod sandboxes through the socket with real CNI plugins: networking between
// pods, host ports, DNS and pod files, sysctls, cgroups, failure cleanup,
// idempotent stop/remove and daemon restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';

const CGROUP_V1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd'];

function podConfig(name: string, extra: Record<string, any> = {}): any {
  const { linux, ...rest } = extra;
  return {
    metadata: { name, namespace: 'tscri-test', uid: `uid-${name}-${randomBytes(3).toString('hex')}`, attempt: 0 },
    hostname: name,
    labels: { app: name, group: 'sandbox-test' },
    annotations: { note: `pod ${name}` },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } }, ...linux },
    ...rest,
  };
}

/** Cleanups run last-registered first, each even if an earlier one failed. */
function cleanups(t: any): (fn: () => Promise<unknown>) => void {
  const stack: Array<() => Promise<unknown>> = [];
  t.after(async () => {
    for (const fn of stack.reverse()) await fn().catch((err) => console.error('cleanup:', err));
  });
  return (fn) => stack.push(fn);
}

interface Env {
  d: TestDaemon;
  net: TestNetwork;
  parent: string;
}

/** A daemon with its own CNI network and cgroup parent; everything is undone after the test. */
async function setup(t: any, options: { failingPlugin?: boolean; empty?: boolean; extraConfig?: string } = {}): Promise<Env> {
  const defer = cleanups(t);
  const net = await makeTestNetwork(options);
  defer(() => net.cleanup());
  const parent = `/tscri-test-${randomBytes(4).toString('hex')}`;
  defer(() => removeCgroupDirs(parent));
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n${options.extraConfig ?? ''}\n${net.toml}` });
  defer(() => d.cleanup());
  defer(() => removeAll(d));
  return { d, net, parent };
}

async function removeCgroupDirs(path: string): Promise<void> {
  for (const c of CGROUP_V1) await rmdir(`/sys/fs/cgroup/${c}${path}`).catch(() => undefined);
}

/** Removes every sandbox the daemon still has (cleanup after a failed assertion). */
async function removeAll(d: TestDaemon): Promise<void> {
  const { items } = await d.call('ListPodSandbox', {}).catch(() => ({ items: [] }));
  for (const item of items) await d.call('RemovePodSandbox', { pod_sandbox_id: item.id }).catch(() => undefined);
}

async function run(d: TestDaemon, config: any): Promise<string> {
  return (await d.call('RunPodSandbox', { config })).pod_sandbox_id;
}

async function info(d: TestDaemon, id: string): Promise<any> {
  const res = await d.call('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
  return { ...res, info: JSON.parse(res.info.info) };
}

function inNetns(netns: string, args: string[]): string {
  return execFileSync('nsenter', [`--net=${netns}`, '--', ...args], { encoding: 'utf8', timeout: 20_000 });
}

test('two pods get distinct IPs, reach each other, and leave nothing behind', async (t) => {
  const { d, net, parent } = await setup(t);
  const a = await run(
    d,
    podConfig('alpha', { dns_config: { servers: ['10.96.0.10'], searches: ['ns.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5', 'edns0'] } }),
  );
  const b = await run(d, podConfig('beta'));
  const sa = await info(d, a);
  const sb = await info(d, b);
  assert.equal(sa.status.state, 'SANDBOX_READY');
  const ipA = sa.status.network.ip;
  const ipB = sb.status.network.ip;
  assert.ok(ipA && ipB && ipA !== ipB, `${ipA} ${ipB}`);
  assert.ok(ipA.startsWith(net.subnet.replace(/0\/24$/, '')), ipA);

  const netnsA = sa.info.namespaces.network;
  const netnsB = sb.info.namespaces.network;
  assert.ok(existsSync(netnsA) && existsSync(netnsB));
  inNetns(netnsA, ['/bin/busybox', 'ping', '-c', '1', '-W', '5', ipB]);
  inNetns(netnsB, ['/bin/busybox', 'ping', '-c', '1', '-W', '5', ipA]);
  assert.match(inNetns(netnsA, ['ip', '-o', 'addr', 'show', 'eth0']), new RegExp(ipA.replace(/\./g, '\\.')));
  assert.match(inNetns(netnsA, ['ip', '-o', 'link', 'show', 'lo']), /UP/);

  // Pod files: resolv.conf from dns_config, hosts, hostname, /dev/shm.
  const resolv = await readFile(sa.info.files.resolvConf, 'utf8');
  assert.equal(resolv, 'search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5 edns0\n');
  assert.match(await readFile(sa.info.files.hosts, 'utf8'), new RegExp(`${ipA.replace(/\./g, '\\.')}\\talpha`));
  assert.equal(await readFile(sa.info.files.hostname, 'utf8'), 'alpha\n');
  assert.equal(execFileSync('nsenter', [`--uts=${sa.info.namespaces.uts}`, 'hostname'], { encoding: 'utf8' }).trim(), 'alpha');
  assert.equal(await readFile(sb.info.files.resolvConf, 'utf8'), readFileSync('/etc/resolv.conf', 'utf8'));
  const shmLine = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === sa.info.files.shm);
  assert.match(shmLine ?? '', /tmpfs.*size=65536k/);

  // The pod cgroup exists under our parent.
  assert.ok(statSync(`/sys/fs/cgroup/memory${parent}/pod-${a}`).isDirectory());

  // Listing and filters.
  const all = (await d.call('ListPodSandbox', {})).items.map((i: any) => i.id).sort();
  assert.deepEqual(all, [a, b].sort());
  assert.deepEqual(
    (await d.call('ListPodSandbox', { filter: { id: a.slice(0, 12) } })).items.map((i: any) => i.id),
    [a],
  );
  assert.deepEqual(
    (await d.call('ListPodSandbox', { filter: { label_selector: { app: 'beta' } } })).items.map((i: any) => i.id),
    [b],
  );
  assert.equal((await d.call('ListPodSandbox', { filter: { label_selector: { app: 'beta', group: 'nope' } } })).items.length, 0);
  const streamed = (await d.call('StreamPodSandboxes', { filter: { label_selector: { group: 'sandbox-test' } } })).flatMap((m: any) =>
    m.pod_sandboxes.map((p: any) => p.id),
  );
  assert.deepEqual(streamed.sort(), [a, b].sort());

  // Stop: network gone, state NOTREADY, idempotent.
  await d.call('StopPodSandbox', { pod_sandbox_id: a });
  await d.call('StopPodSandbox', { pod_sandbox_id: a });
  assert.equal((await d.call('PodSandboxStatus', { pod_sandbox_id: a })).status.state, 'SANDBOX_NOTREADY');
  assert.deepEqual(
    (await d.call('ListPodSandbox', { filter: { state: { state: 'SANDBOX_READY' } } })).items.map((i: any) => i.id),
    [b],
  );
  assert.deepEqual(
    (await d.call('ListPodSandbox', { filter: { state: { state: 'SANDBOX_NOTREADY' } } })).items.map((i: any) => i.id),
    [a],
  );
  assert.ok(!existsSync(netnsA));
  assert.ok(!shmMounted(sa.info.files.shm));
  assert.deepEqual(await net.leftovers([a], { othersRunning: true }), []);
  assert.equal(execFileSync('ip', ['-o', 'link', 'show', 'master', net.bridge], { encoding: 'utf8' }).trim().split('\n').length, 1);

  // Remove both (b without a stop first), twice.
  for (const id of [a, b, a, b]) await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.deepEqual((await d.call('ListPodSandbox', {})).items, []);
  assert.deepEqual(await net.leftovers([a, b]), []);
  assert.ok(!existsSync(netnsB) && !existsSync(sb.info.namespaces.ipc));
  assert.ok(!existsSync(join(d.state, 'pods', a)));
  assert.ok(!existsSync(`/sys/fs/cgroup/memory${parent}/pod-${a}`));
  await assert.rejects(d.call('PodSandboxStatus', { pod_sandbox_id: a }), (err: any) => err.code === status.NOT_FOUND);
  await d.call('StopPodSandbox', { pod_sandbox_id: 'f'.repeat(64) });
  await d.call('RemovePodSandbox', { pod_sandbox_id: 'f'.repeat(64) });
});

function shmMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  const port = (server.address() as any).port;
  await new Promise((r) => server.close(r));
  return port;
}

test('a host port mapping forwards to the pod', async (t) => {
  const { d, net } = await setup(t);
  const hostPort = await freePort();
  const id = await run(d, podConfig('web', { port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: hostPort }] }));
  const s = await info(d, id);
  const listener = spawn('nsenter', [`--net=${s.info.namespaces.network}`, '--', '/bin/busybox', 'nc', '-l', '-p', '8080'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => listener.kill('SIGKILL'));
  let received = '';
  listener.stdout.on('data', (c) => (received += c));
  const exited = new Promise((r) => listener.once('exit', r));
  // Wait for the listener inside the pod before connecting through the host port.
  for (let i = 0; i < 200 && !inNetns(s.info.namespaces.network, ['/bin/busybox', 'netstat', '-ltn']).includes(':8080'); i++)
    await new Promise((r) => setTimeout(r, 25));
  await new Promise<void>((resolve, reject) => {
    const socket = connect(hostPort, net.gateway, () => socket.end('hello through hostPort\n'));
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
  await exited;
  assert.equal(received, 'hello through hostPort\n');
  assert.ok(execFileSync('iptables-save', { encoding: 'utf8' }).includes(id));
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.deepEqual(await net.leftovers([id]), []);
});

test('host network and shared pid: the pod uses the host network, an infra process holds the pid namespace', async (t) => {
  const { d } = await setup(t);
  const config = podConfig('hostnet', { linux: { security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'NODE' } } } });
  const id = await run(d, config);
  const s = await info(d, id);
  assert.equal(s.status.network.ip, '');
  assert.equal(s.info.namespaces.network, undefined);
  assert.equal(s.info.files.shm, undefined);
  const pid = s.info.pid;
  assert.ok(pid > 0);
  assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /catatonit/);
  // The infra process sees the host's interfaces: same network namespace as ours.
  assert.equal(statSync(`/proc/${pid}/ns/net`).ino, statSync('/proc/self/ns/net').ino);
  assert.notEqual(statSync(`/proc/${pid}/ns/pid`).ino, statSync('/proc/self/ns/pid').ino);
  assert.equal(s.info.namespaces.pid, `/proc/${pid}/ns/pid`);
  assert.equal(s.status.linux.namespaces.options.network, 'NODE');
  assert.equal(s.status.linux.namespaces.options.pid, 'POD');
  assert.equal(await readFile(s.info.files.hosts, 'utf8'), readFileSync('/etc/hosts', 'utf8'));
  // oom_score_adj cannot go below ours without CAP_SYS_RESOURCE: clamped, not failed.
  assert.ok(Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8')) >= Number(readFileSync('/proc/self/oom_score_adj', 'utf8')));
  // The infra process lives in the pod cgroup.
  assert.match(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`pod-${id}`));

  await d.call('StopPodSandbox', { pod_sandbox_id: id });
  assert.ok(!existsSync(`/proc/${pid}/cmdline`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('catatonit'));
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });

  // A host-network pod may not set network sysctls.
  const bad = podConfig('hostnet-sysctl', {
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } }, sysctls: { 'net.ipv4.ip_forward': '1' } },
  });
  await assert.rejects(run(d, bad), (err: any) => err.code === status.INVALID_ARGUMENT && /host-network/.test(err.details));
});

test('sysctls are applied inside the pod namespaces; node-wide ones are refused', async (t) => {
  const { d } = await setup(t);
  const id = await run(d, podConfig('sysctl', { linux: { sysctls: { 'net.ipv4.ip_unprivileged_port_start': '53', 'kernel.shmmni': '1234' } } }));
  const s = await info(d, id);
  assert.equal(inNetns(s.info.namespaces.network, ['cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start']).trim(), '53');
  assert.equal(execFileSync('nsenter', [`--ipc=${s.info.namespaces.ipc}`, 'cat', '/proc/sys/kernel/shmmni'], { encoding: 'utf8' }).trim(), '1234');
  assert.notEqual(readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim(), '1234');
  await assert.rejects(
    run(d, podConfig('badsysctl', { linux: { sysctls: { 'kernel.pid_max': '100000' } } })),
    (err: any) => err.code === status.INVALID_ARGUMENT && /not namespaced/.test(err.details),
  );
});

test('a failing CNI plugin gives a clear error and leaks nothing', async (t) => {
  const { d, net } = await setup(t, { failingPlugin: true });
  const hostPort = await freePort();
  const config = podConfig('failing', { port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: hostPort }] });
  await assert.rejects(run(d, config), (err: any) => {
    assert.match(err.details, /CNI plugin fail-\w+ .*failed ADD on network tscri-test-\w+: test plugin refuses the pod: always fails/);
    return true;
  });
  assert.deepEqual((await d.call('ListPodSandbox', {})).items, []);
  // The failed id never reaches the caller; look for anything left of the pod by its name and network.
  const rules = execFileSync('iptables-save', { encoding: 'utf8' });
  assert.ok(!rules.includes(`${hostPort}`), 'host port rule left behind');
  assert.deepEqual(await net.leftovers([]), []);
  const nsDir = join(d.state, 'ns', 'net');
  assert.deepEqual(existsSync(nsDir) ? execFileSync('ls', [nsDir], { encoding: 'utf8' }).trim() : '', '');
  assert.deepEqual(existsSync(join(d.state, 'pods')) ? execFileSync('ls', [join(d.state, 'pods')], { encoding: 'utf8' }).trim() : '', '');
  // The name was released: the same attempt fails the same way, not ALREADY_EXISTS.
  await assert.rejects(run(d, config), (err: any) => err.code !== status.ALREADY_EXISTS);
});

test('no CNI config: a pod network is refused clearly, host-network pods still run', async (t) => {
  const { d } = await setup(t, { empty: true });
  await assert.rejects(run(d, podConfig('nonet')), (err: any) => err.code === status.FAILED_PRECONDITION && /no CNI network configuration/.test(err.details));
  const id = await run(d, podConfig('hostnet', { linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } } }));
  assert.equal((await d.call('PodSandboxStatus', { pod_sandbox_id: id })).status.state, 'SANDBOX_READY');
});

test('the same metadata twice is ALREADY_EXISTS naming the holder; an unknown handler is INVALID_ARGUMENT', async (t) => {
  const { d } = await setup(t);
  const config = podConfig('dup');
  const id = await run(d, config);
  await assert.rejects(run(d, config), (err: any) => err.code === status.ALREADY_EXISTS && err.details.includes(id));
  await d.call('StopPodSandbox', { pod_sandbox_id: id });
  await assert.rejects(run(d, config), (err: any) => err.code === status.ALREADY_EXISTS);
  // A new attempt is a new pod.
  const second = await run(d, { ...config, metadata: { ...config.metadata, attempt: 1 } });
  assert.notEqual(second, id);
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  await d.call('RemovePodSandbox', { pod_sandbox_id: second });
  const again = await run(d, config);
  await d.call('RemovePodSandbox', { pod_sandbox_id: again });

  await assert.rejects(
    d.call('RunPodSandbox', { config: podConfig('handler'), runtime_handler: 'nope' }),
    (err: any) => err.code === status.INVALID_ARGUMENT && /runtime handler "nope" is not configured/.test(err.details),
  );
  await assert.rejects(d.call('RunPodSandbox', { config: { metadata: { name: 'x' } } }), (err: any) => err.code === status.INVALID_ARGUMENT);
  const crun = await d.call('RunPodSandbox', { config: podConfig('crun'), runtime_handler: 'crun' });
  assert.equal((await d.call('PodSandboxStatus', { pod_sandbox_id: crun.pod_sandbox_id })).status.runtime_handler, 'crun');
});

test('after a daemon restart sandboxes keep their real state and can be stopped and removed', async (t) => {
  const defer = cleanups(t);
  const net = await makeTestNetwork();
  defer(() => net.cleanup());
  const parent = `/tscri-test-${randomBytes(4).toString('hex')}`;
  defer(() => removeCgroupDirs(parent));
  const config = `default_cgroup_parent = "${parent}"\n${net.toml}`;
  const first = await startDaemon({ config });
  defer(() => first.cleanup());
  defer(() => removeAll(first));
  const ready = await run(first, podConfig('keep'));
  const killed = await run(first, podConfig('killed', { linux: { security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } } }));
  const killedInfo = await info(first, killed);
  await first.stop();

  const second = await startDaemon({ config, dir: first.dir });
  defer(() => second.stop());
  defer(() => removeAll(second));
  const states = Object.fromEntries((await second.call('ListPodSandbox', {})).items.map((i: any) => [i.id, i.state]));
  assert.deepEqual(states, { [ready]: 'SANDBOX_READY', [killed]: 'SANDBOX_READY' });
  // The infra process dies while nobody watches: the pod is reported NOTREADY.
  process.kill(killedInfo.info.pid, 'SIGKILL');
  for (let i = 0; i < 100 && existsSync(`/proc/${killedInfo.info.pid}/stat`) && !readFileSync(`/proc/${killedInfo.info.pid}/stat`, 'utf8').includes(') Z'); i++)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal((await second.call('PodSandboxStatus', { pod_sandbox_id: killed })).status.state, 'SANDBOX_NOTREADY');
  const readyInfo = await info(second, ready);
  assert.equal(readyInfo.status.state, 'SANDBOX_READY');
  assert.ok(readyInfo.status.network.ip);
  assert.equal(readyInfo.status.network.ip, readyInfo.info.ips[0]);
  for (const id of [ready, killed]) {
    await second.call('StopPodSandbox', { pod_sandbox_id: id });
    await second.call('RemovePodSandbox', { pod_sandbox_id: id });
  }
  assert.deepEqual((await second.call('ListPodSandbox', {})).items, []);
  assert.deepEqual(await net.leftovers([ready, killed]), []);
});

test('pod cgroups: resources and overhead written, systemd slices expanded, updates applied', async (t) => {
  const { d, parent } = await setup(t);
  const id = await run(
    d,
    podConfig('limits', {
      linux: {
        resources: { cpu_shares: 512, memory_limit_in_bytes: 256 * 1024 * 1024, cpu_period: 100000, cpu_quota: 50000 },
        overhead: { cpu_shares: 10, memory_limit_in_bytes: 16 * 1024 * 1024 },
      },
    }),
  );
  const base = `${parent}/pod-${id}`;
  assert.equal(readFileSync(`/sys/fs/cgroup/cpu${base}/cpu.shares`, 'utf8').trim(), '522');
  assert.equal(readFileSync(`/sys/fs/cgroup/cpu${base}/cpu.cfs_quota_us`, 'utf8').trim(), '50000');
  assert.equal(readFileSync(`/sys/fs/cgroup/memory${base}/memory.limit_in_bytes`, 'utf8').trim(), String(272 * 1024 * 1024));
  await d.call('UpdatePodSandboxResources', { pod_sandbox_id: id, resources: { cpu_shares: 1024, memory_limit_in_bytes: 512 * 1024 * 1024 } });
  assert.equal(readFileSync(`/sys/fs/cgroup/cpu${base}/cpu.shares`, 'utf8').trim(), '1024');
  assert.equal(readFileSync(`/sys/fs/cgroup/memory${base}/memory.limit_in_bytes`, 'utf8').trim(), String(512 * 1024 * 1024));
  await assert.rejects(d.call('UpdatePodSandboxResources', { pod_sandbox_id: 'f'.repeat(64), resources: {} }), (err: any) => err.code === status.NOT_FOUND);
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.ok(!existsSync(`/sys/fs/cgroup/cpu${base}`));
  await d.call('UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr: '10.244.1.0/24' } } });
  for (let i = 0; i < 100 && !d.output().includes('pod CIDR updated'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(d.output(), /"podCidr":"10.244.1.0\/24".*pod CIDR updated/);
});

test('systemd cgroup driver: the pod slice is created where systemd would put it', async (t) => {
  const defer = cleanups(t);
  const net = await makeTestNetwork();
  defer(() => net.cleanup());
  const tag = randomBytes(4).toString('hex');
  defer(async () => {
    await removeCgroupDirs(`/tscri.slice/tscri-t${tag}.slice`);
    await removeCgroupDirs('/tscri.slice');
  });
  const d = await startDaemon({ config: `cgroup_driver = "systemd"\n${net.toml}` });
  defer(() => d.cleanup());
  defer(() => removeAll(d));
  const slice = `tscri-t${tag}-pod1.slice`;
  const id = await run(d, podConfig('slice', { linux: { cgroup_parent: slice } }));
  const dir = `/sys/fs/cgroup/pids/tscri.slice/tscri-t${tag}.slice/${slice}`;
  assert.ok(statSync(dir).isDirectory());
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.ok(!existsSync(dir));
  await assert.rejects(run(d, podConfig('badslice', { linux: { cgroup_parent: 'not-a-slice' } })), (err: any) => err.code === status.INVALID_ARGUMENT);
});

test('a pod whose network namespace vanished is NOTREADY and still stops and removes cleanly', async (t) => {
  const { d, net } = await setup(t);
  const id = await run(d, podConfig('vanish'));
  const s = await info(d, id);
  execFileSync('umount', [s.info.namespaces.network]);
  execFileSync('rm', ['-f', s.info.namespaces.network]);
  assert.equal((await d.call('PodSandboxStatus', { pod_sandbox_id: id })).status.state, 'SANDBOX_NOTREADY');
  assert.equal((await info(d, id)).info.netNamespaceClosed, true);
  await d.call('StopPodSandbox', { pod_sandbox_id: id });
  await d.call('StopPodSandbox', { pod_sandbox_id: id });
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.deepEqual(await net.leftovers([id]), []);
});

/** Mounts under a directory, from this process's mount table. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

test('namespaces a crash left pinned are unpinned at start and on removal, whatever the record says', async (t) => {
  const defer = cleanups(t);
  const net = await makeTestNetwork();
  defer(() => net.cleanup());
  const parent = `/tscri-test-${randomBytes(4).toString('hex')}`;
  defer(() => removeCgroupDirs(parent));
  const config = `default_cgroup_parent = "${parent}"\n${net.toml}`;
  const first = await startDaemon({ config });
  defer(() => first.cleanup());
  defer(() => removeAll(first));
  const interrupted = await run(first, podConfig('interrupted'));
  const forgetful = await run(first, podConfig('forgetful'));
  await first.stop();

  // As a kill -9 between pinning the namespaces and saving the record leaves them: pinned, not recorded.
  const records = join(first.root, 'sandboxes');
  const edit = async (id: string, change: (r: any) => void) => {
    const file = join(records, `${id}.json`);
    const r = JSON.parse(await readFile(file, 'utf8'));
    change(r);
    await writeFile(file, JSON.stringify(r));
  };
  await edit(interrupted, (r) => {
    r.creating = true;
    r.state = 'SANDBOX_NOTREADY';
    r.namespaces = {};
  });
  await edit(forgetful, (r) => {
    r.namespaces = {};
  });
  // And a pod whose record never reached the disk at all.
  const orphan = randomBytes(32).toString('hex');
  const orphanFiles = ['ipc', 'uts'].map((kind) => join(first.state, 'ns', kind, orphan));
  for (const file of orphanFiles) await writeFile(file, '');
  execFileSync('unshare', [`--ipc=${orphanFiles[0]}`, `--uts=${orphanFiles[1]}`, 'true']);
  defer(async () => {
    for (const file of orphanFiles) execFileSync('sh', ['-c', `umount ${file} 2>/dev/null; rm -f ${file}`]);
  });
  const pinned = (id: string) => mountsUnder(join(first.state, 'ns')).filter((m) => m.endsWith(id));
  assert.equal(pinned(interrupted).length, 3);
  assert.equal(pinned(orphan).length, 2);

  const second = await startDaemon({ config, dir: first.dir });
  defer(() => second.stop());
  defer(() => removeAll(second));
  assert.deepEqual(pinned(orphan), [], 'namespaces of a pod without a record are unpinned at start');
  assert.deepEqual(pinned(interrupted), [], 'an interrupted creation is undone at start');
  assert.equal((await second.call('PodSandboxStatus', { pod_sandbox_id: interrupted })).status.state, 'SANDBOX_NOTREADY');
  assert.equal(pinned(forgetful).length, 3);
  for (const id of [interrupted, forgetful]) {
    await second.call('StopPodSandbox', { pod_sandbox_id: id });
    await second.call('RemovePodSandbox', { pod_sandbox_id: id });
  }
  assert.deepEqual(mountsUnder(first.dir), [], 'no mount of the daemon is left');
  assert.deepEqual(await net.leftovers([interrupted, forgetful]), []);
});

test('a pod whose CNI plugins went missing can still be stopped and removed; its network is cleaned up once they are back', async (t) => {
  const defer = cleanups(t);
  const net = await makeTestNetwork();
  defer(() => net.cleanup());
  const { mkdtemp, rename, symlink, readdir, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const base = await mkdtemp(join(tmpdir(), 'tscri-plugins-'));
  defer(() => rm(base, { recursive: true, force: true }));
  const plugins = join(base, 'bin');
  const away = join(base, 'away');
  await import('node:fs/promises').then((fs) => fs.mkdir(plugins));
  for (const p of ['bridge', 'host-local', 'portmap', 'loopback']) await symlink(`/usr/lib/cni/${p}`, join(plugins, p));
  const parent = `/tscri-test-${randomBytes(4).toString('hex')}`;
  defer(() => removeCgroupDirs(parent));
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n[cni]\nconf_dir = "${net.confDir}"\nbin_dirs = ["${plugins}"]\n` });
  defer(() => d.cleanup());
  defer(() => removeAll(d));

  const id = await run(d, podConfig('orphaned-net'));
  const netns = (await info(d, id)).info.namespaces.network;
  await rename(plugins, away);
  defer(() => rename(away, plugins).catch(() => undefined));

  await d.call('StopPodSandbox', { pod_sandbox_id: id });
  assert.match(d.output(), /the CNI plugins [a-z, -]+ are not installed/);
  await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  assert.deepEqual((await d.call('ListPodSandbox', {})).items, []);
  assert.ok(existsSync(netns), 'the network namespace stays pinned until DEL can run');
  assert.deepEqual(await readdir(join(d.root, 'network-cleanup')), [`${id}.json`]);
  assert.ok((await net.leftovers([id])).length > 0, 'the IP reservation is still held');

  // The plugins come back (here: SIGHUP after the install; a timer and the next start retry too).
  await rename(away, plugins);
  d.process.kill('SIGHUP');
  for (let i = 0; i < 200 && !d.output().includes('network cleaned up now that its CNI plugins are installed'); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(d.output(), /network cleaned up now that its CNI plugins are installed/);
  assert.deepEqual(await net.leftovers([id]), []);
  assert.ok(!existsSync(netns), 'the network namespace is unpinned');
  assert.deepEqual(await readdir(join(d.root, 'network-cleanup')), []);
});

test('missing conmon, runc, infra process and CNI plugins are warned about at start and named by the calls that need them', async (t) => {
  const defer = cleanups(t);
  const net = await makeTestNetwork();
  defer(() => net.cleanup());
  const { readFile: read, writeFile: write } = await import('node:fs/promises');
  const conf = JSON.parse(await read(join(net.confDir, '10-test.conflist'), 'utf8'));
  conf.plugins.splice(1, 0, { type: 'nosuch-plugin' });
  await write(join(net.confDir, '10-test.conflist'), JSON.stringify(conf));
  const parent = `/tscri-test-${randomBytes(4).toString('hex')}`;
  defer(() => removeCgroupDirs(parent));
  const d = await startDaemon({
    config: `default_cgroup_parent = "${parent}"\n[conmon]\npath = "/nonexistent/conmon"\n[pod]\ninfra_path = "/nonexistent/catatonit"\n[runtime.handlers.broken]\npath = "/nonexistent/runc"\n${net.toml}`,
  });
  defer(() => d.cleanup());
  defer(() => removeAll(d));
  const out = d.output();
  assert.match(out, /conmon is not installed/);
  assert.match(out, /the pod infra process is not installed/);
  assert.match(out, /an OCI runtime is not installed: containers of runtime handler broken cannot run/);
  assert.match(out, /the CNI plugins nosuch-plugin of network tscri-test-\w+ are not installed/);

  await assert.rejects(d.call('RunPodSandbox', { config: podConfig('needs-plugin') }), (e: any) => {
    assert.equal(e.code, status.FAILED_PRECONDITION, e.details);
    assert.match(e.details, /CNI plugin nosuch-plugin not found/);
    return true;
  });
  assert.deepEqual(await net.leftovers([]), [], 'the failed ADD was undone');
  const hostNet = { linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } } };
  await assert.rejects(
    d.call('RunPodSandbox', {
      config: podConfig('needs-infra', { linux: { security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } } }),
    }),
    (e: any) => {
      assert.equal(e.code, status.FAILED_PRECONDITION, e.details);
      assert.match(e.details, /\/nonexistent\/catatonit .*is not installed/);
      return true;
    },
  );
  const config = podConfig('needs-conmon', hostNet);
  const id = await run(d, config);
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: id, config: { metadata: { name: 'c' }, image: { image: 'busybox' } }, sandbox_config: config }),
    (e: any) => {
      assert.equal(e.code, status.FAILED_PRECONDITION, e.details);
      assert.match(e.details, /conmon \/nonexistent\/conmon is not installed or not executable/);
      assert.doesNotMatch(e.details, /sync pipe/);
      return true;
    },
  );
  const { pod_sandbox_id: broken } = await d.call('RunPodSandbox', { config: podConfig('broken-runtime', hostNet), runtime_handler: 'broken' });
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: broken, config: { metadata: { name: 'c' }, image: { image: 'busybox' } }, sandbox_config: config }),
    (e: any) => e.code === status.FAILED_PRECONDITION && /conmon/.test(e.details),
  );
});
