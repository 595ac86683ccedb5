// Every RPC, called with an empty request and with one whose ids, names and
// paths try to climb out of tscri's directories, gets a gRPC status with a
// message; the daemon keeps serving and nothing appears outside its dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
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
  (ok as any).port_mappings = [{ protocol: 'TCP', container_port: 80, host_port: 8080, host_ip: '127.0.0.1' }, { protocol: 'UDP', container_port: 53, host_port: 5353, host_ip: '::1' }];
  await d.call('RunPodSandbox', { config: ok });
});
