// Every RPC, called with an empty request and with one whose ids, names and
// paths try to climb out of tscri's directories, gets a gRPC status with a
// message; the daemon keeps serving and nothing appears outside its dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { loadServices } from '../../src/server/server.ts';

/** Codes that would mean the daemon did not understand its own failure. */
const UNEXPECTED = new Set([status.UNKNOWN, status.INTERNAL]);

function hostileRequest(escape: string) {
  const metadata = { name: escape, namespace: escape, uid: escape, attempt: 0 };
  return {
    container_id: escape,
    pod_sandbox_id: escape,
    image: { image: escape },
    filter: { id: escape, pod_sandbox_id: escape },
    config: {
      metadata,
      image: { image: escape },
      log_directory: escape,
      log_path: escape,
      hostname: escape,
      linux: { cgroup_parent: escape },
      command: ['true'],
    },
    sandbox_config: { metadata, log_directory: escape },
    cmd: ['true'],
    location: escape,
    output_path: escape,
    checkpoint_path: escape,
    path: escape,
    timeout: 1,
  };
}

test('every RPC answers empty and escaping requests with a status and the daemon keeps serving', { timeout: 180_000 }, async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const services = loadServices();
  const marker = `/tmp/tscri-escape-${randomBytes(4).toString('hex')}`;
  const escape = `../../../../../../..${marker}`;
  const rpcs = [...Object.keys(services.runtime), ...Object.keys(services.image)];
  for (const rpc of rpcs) {
    for (const request of [{}, hostileRequest(escape)]) {
      const outcome = await d.call(rpc, request, { timeoutMs: 3000 }).then(
        () => undefined,
        (err: any) => err,
      );
      if (outcome && outcome.code !== status.DEADLINE_EXCEEDED) {
        assert.ok(!UNEXPECTED.has(outcome.code), `${rpc}: ${outcome.code} ${outcome.details}`);
        assert.ok(outcome.details, `${rpc}: an error without a message`);
      }
      assert.equal(d.process.exitCode, null, `the daemon exited after ${rpc}`);
    }
  }
  assert.equal(existsSync(marker), false, 'a request wrote outside the daemon directories');
  const version = await d.call('Version', {});
  assert.equal(version.runtime_name, 'tscri');
  assert.doesNotMatch(d.output(), /uncaught|unhandled/i);
});

const CGROUP_V1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd', 'hugetlb', 'unified'];

/** A daemon with a cgroup parent of its own (removed afterwards) for pods in the host network. */
async function podDaemon(t: any) {
  const parent = `/tscri-hostile-${randomBytes(4).toString('hex')}`;
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n` });
  t.after(async () => {
    const { items } = await d.call('ListPodSandbox', {}).catch(() => ({ items: [] }));
    for (const item of items) await d.call('RemovePodSandbox', { pod_sandbox_id: item.id }).catch(() => undefined);
    await d.cleanup();
    for (const c of CGROUP_V1) await rmdir(`/sys/fs/cgroup/${c}${parent}`).catch(() => undefined);
  });
  return d;
}

function hostPod(name: string, linux: Record<string, any> = {}) {
  return {
    metadata: { name, namespace: 'hostile', uid: `uid-${randomBytes(4).toString('hex')}`, attempt: 0 },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } }, ...linux },
  };
}

test('hugepage page sizes that climb out of the pod cgroup are refused and write nothing', { timeout: 60_000 }, async (t) => {
  const d = await podDaemon(t);
  const victim = `/tmp/tscri-hugepage-${randomBytes(4).toString('hex')}`;
  await writeFile(`${victim}.limit_in_bytes`, 'untouched');
  await writeFile(`${victim}.max`, 'untouched');
  t.after(() => Promise.all([rm(`${victim}.limit_in_bytes`, { force: true }), rm(`${victim}.max`, { force: true })]));
  const pageSize = `/../../../../../../../../..${victim}`;
  const hostile = { hugepage_limits: [{ page_size: pageSize, limit: 4096 }] };

  const err = await d.call('RunPodSandbox', { config: hostPod('hugepage-run', { resources: hostile }) }).catch((e: any) => e);
  assert.equal(err.code, status.INVALID_ARGUMENT, err.details);
  assert.match(err.details, /hugepage size/);
  const err2 = await d.call('RunPodSandbox', { config: hostPod('hugepage-overhead', { overhead: hostile }) }).catch((e: any) => e);
  assert.equal(err2.code, status.INVALID_ARGUMENT, err2.details);

  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: hostPod('hugepage-update') });
  const err3 = await d.call('UpdatePodSandboxResources', { pod_sandbox_id, resources: hostile }).catch((e: any) => e);
  assert.equal(err3.code, status.INVALID_ARGUMENT, err3.details);
  const err4 = await d.call('UpdatePodSandboxResources', { pod_sandbox_id, overhead: { unified: { '../../x': '1' } } }).catch((e: any) => e);
  assert.equal(err4.code, status.INVALID_ARGUMENT, err4.details);

  assert.equal(await readFile(`${victim}.limit_in_bytes`, 'utf8'), 'untouched');
  assert.equal(await readFile(`${victim}.max`, 'utf8'), 'untouched');
  // A well-formed size is still accepted.
  await d.call('UpdatePodSandboxResources', { pod_sandbox_id, resources: { hugepage_limits: [{ page_size: '2MB', limit: 2 << 20 }] } });
});

test('a port mapping whose host_ip is not an IP address is refused', { timeout: 60_000 }, async (t) => {
  const d = await podDaemon(t);
  for (const hostIp of ['localhost', '10.0.0.1; iptables -F', '../../etc', '1.2.3.4.5', '::g', 'x'.repeat(100_000)]) {
    for (const network of ['NODE', 'POD']) {
      const config = hostPod(`ports-${randomBytes(2).toString('hex')}`);
      config.linux.security_context.namespace_options.network = network;
      (config as any).port_mappings = [{ protocol: 'TCP', container_port: 80, host_port: 8080, host_ip: hostIp }];
      const err = await d.call('RunPodSandbox', { config }).catch((e: any) => e);
      assert.equal(err.code, status.INVALID_ARGUMENT, `${hostIp.slice(0, 20)} (${network}): ${err.details}`);
      assert.match(err.details, /host_ip/);
      assert.ok(err.details.length < 300, 'the message does not carry the whole input back');
    }
  }
  const ok = hostPod('ports-ok');
  (ok as any).port_mappings = [
    { protocol: 'TCP', container_port: 80, host_port: 8080, host_ip: '127.0.0.1' },
    { protocol: 'UDP', container_port: 53, host_port: 5353, host_ip: '::1' },
  ];
  await d.call('RunPodSandbox', { config: ok });
});

test('client mistakes in pod and container requests are INVALID_ARGUMENT or FAILED_PRECONDITION, never INTERNAL', { timeout: 180_000 }, async (t) => {
  const registry = await startRegistry();
  t.after(() => registry.stop());
  const d = await podDaemon(t);
  const dir = await mkdtemp(join(tmpdir(), 'tscri-hostile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await pushBusybox(registry.url, 'hostile/busybox', 'v1');
  const image = `${registry.host}/hostile/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const podConfig = (name: string, extra: Record<string, any> = {}) => ({ ...hostPod(name), log_directory: join(dir, 'logs'), ...extra });
  const pc = podConfig('base');
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: pc });
  const ctr = (extra: Record<string, any>) => ({
    pod_sandbox_id,
    config: { metadata: { name: `c${randomBytes(3).toString('hex')}` }, image: { image }, command: ['/bin/sleep', '30'], log_path: 'c.log', ...extra },
    sandbox_config: pc,
  });
  const sc = (security_context: Record<string, any>) => ({ linux: { security_context } });
  const res = (resources: Record<string, any>) => ({ linux: { resources } });
  const { container_id } = await d.call('CreateContainer', ctr({}));
  await d.call('StartContainer', { container_id });
  const NUL = 'a\0b';
  const I = status.INVALID_ARGUMENT;
  const F = status.FAILED_PRECONDITION;
  const cases: Array<[string, string, any, number]> = [
    ['pod name with NUL', 'RunPodSandbox', { config: podConfig(NUL) }, I],
    ['pod log_directory with NUL', 'RunPodSandbox', { config: podConfig('p1', { log_directory: `/tmp/${NUL}` }) }, I],
    ['pod DNS server with NUL', 'RunPodSandbox', { config: podConfig('p2', { dns_config: { servers: [NUL], searches: [], options: [] } }) }, I],
    ['pod cgroup_parent with NUL', 'RunPodSandbox', { config: podConfig('p3', { linux: { ...hostPod('x').linux, cgroup_parent: `/x${NUL}` } }) }, I],
    ['pod annotation with NUL', 'RunPodSandbox', { config: podConfig('p4', { annotations: { a: NUL } }) }, I],
    ['pod negative memory', 'RunPodSandbox', { config: podConfig('p5', { linux: { ...hostPod('x').linux, resources: { memory_limit_in_bytes: -5 } } }) }, I],
    ['pod negative cpu_shares', 'RunPodSandbox', { config: podConfig('p6', { linux: { ...hostPod('x').linux, resources: { cpu_shares: -5 } } }) }, I],
    ['pod malformed cpuset', 'RunPodSandbox', { config: podConfig('p7', { linux: { ...hostPod('x').linux, resources: { cpuset_cpus: 'zz' } } }) }, I],
    [
      'pod cpuset of CPUs the node lacks',
      'RunPodSandbox',
      { config: podConfig('p8', { linux: { ...hostPod('x').linux, resources: { cpuset_cpus: '4000' } } }) },
      I,
    ],
    ['container name with NUL', 'CreateContainer', ctr({ metadata: { name: NUL } }), I],
    ['command with NUL', 'CreateContainer', ctr({ command: [NUL] }), I],
    ['env value with NUL', 'CreateContainer', ctr({ envs: [{ key: 'A', value: Buffer.from(NUL) }] }), I],
    ['env key with NUL', 'CreateContainer', ctr({ envs: [{ key: NUL, value: Buffer.from('x') }] }), I],
    ['working_dir with NUL', 'CreateContainer', ctr({ working_dir: `/${NUL}` }), I],
    ['relative working_dir', 'CreateContainer', ctr({ working_dir: 'relative' }), I],
    ['log_path with NUL', 'CreateContainer', ctr({ log_path: NUL }), I],
    ['mount host_path with NUL', 'CreateContainer', ctr({ mounts: [{ host_path: `/tmp/${NUL}`, container_path: '/x' }] }), I],
    ['relative mount host_path', 'CreateContainer', ctr({ mounts: [{ host_path: 'tmp', container_path: '/x' }] }), I],
    ['device with NUL', 'CreateContainer', ctr({ devices: [{ host_path: `/dev/${NUL}`, container_path: '/dev/x', permissions: 'r' }] }), I],
    ['negative memory', 'CreateContainer', ctr(res({ memory_limit_in_bytes: -5 })), I],
    ['negative cpu_shares', 'CreateContainer', ctr(res({ cpu_shares: -5 })), I],
    ['negative cpu_period', 'CreateContainer', ctr(res({ cpu_period: -5 })), I],
    ['negative swap', 'CreateContainer', ctr(res({ memory_swap_limit_in_bytes: -5, memory_limit_in_bytes: 1 << 26 })), I],
    ['malformed cpuset', 'CreateContainer', ctr(res({ cpuset_cpus: '0-' })), I],
    ['negative run_as_user', 'CreateContainer', ctr(sc({ run_as_user: { value: -1 } })), I],
    ['negative supplemental group', 'CreateContainer', ctr(sc({ supplemental_groups: [-3] })), I],
    ['relative masked path', 'CreateContainer', ctr(sc({ masked_paths: ['proc/kcore'] })), I],
    ['readonly path with NUL', 'CreateContainer', ctr(sc({ readonly_paths: [`/proc/${NUL}`] })), I],
    ['update: negative memory', 'UpdateContainerResources', { container_id, linux: { memory_limit_in_bytes: -5 } }, I],
    ['update: negative cpu_shares', 'UpdateContainerResources', { container_id, linux: { cpu_shares: -5 } }, I],
    ['update: malformed cpuset', 'UpdateContainerResources', { container_id, linux: { cpuset_cpus: 'zz' } }, I],
    ['update: memory below what the container uses', 'UpdateContainerResources', { container_id, linux: { memory_limit_in_bytes: 1 } }, F],
    ['update pod: negative', 'UpdatePodSandboxResources', { pod_sandbox_id, resources: { memory_limit_in_bytes: -5 } }, I],
    ['update pod: malformed cpuset', 'UpdatePodSandboxResources', { pod_sandbox_id, resources: { cpuset_cpus: 'zz' } }, I],
    ['checkpoint location with NUL', 'CheckpointContainer', { container_id, location: `/tmp/${NUL}` }, I],
  ];
  const wrong: string[] = [];
  for (const [label, rpc, req, expected] of cases) {
    const outcome = await d.call(rpc, req, { timeoutMs: 30_000 }).then(
      (r: any) => ({ code: status.OK, details: '', r }),
      (e: any) => e,
    );
    if (outcome.code === status.OK && rpc === 'CreateContainer') await d.call('RemoveContainer', { container_id: outcome.r.container_id });
    if (outcome.code !== expected) wrong.push(`${label}: ${status[outcome.code]} ${String(outcome.details).slice(0, 160)}`);
    else assert.ok(outcome.details.length < 400, `${label}: a short message`);
  }
  assert.deepEqual(wrong, []);

  // The runtime makes a container's process after CreateContainer answers (as containerd does at
  // StartContainer): a limit the kernel refuses then fails the start, precisely, and removal works.
  const tiny = await d.call('CreateContainer', ctr(res({ memory_limit_in_bytes: 1 })));
  const refused = await d.call('StartContainer', { container_id: tiny.container_id }).catch((e: any) => e);
  assert.equal(refused.code, F, String(refused.details));
  assert.match(refused.details, /memory_limit_in_bytes/);
  await d.call('RemoveContainer', { container_id: tiny.container_id });

  // A bind mount whose host directory does not exist gets it made, as containerd does.
  const missing = join(dir, 'made', 'by', 'mount');
  const made = await d.call('CreateContainer', ctr({ mounts: [{ host_path: missing, container_path: '/data' }] }));
  assert.ok(statSync(missing).isDirectory());
  await d.call('RemoveContainer', { container_id: made.container_id });
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
});
