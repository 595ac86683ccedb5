// Containers end to end through the socket: a pod from the real bridge
// plugin, an image pulled from a loopback registry, runc under conmon; the
// process, its log, exit code, user, env, security and resources checked
// on the system; exec, streaming, port-forward, stats and events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import type { TestDaemon } from '../helpers/daemon.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import type { TestNetwork } from '../helpers/cni.ts';
import { startPodFixture, type PodFixture } from '../helpers/pod-fixture.ts';
import { SpdyClient, upgrade } from '../helpers/stream-client.ts';
import { parseExposition, sample } from '../helpers/prometheus.ts';

let f: PodFixture;
let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let image: string;
let tag: string;
let logDir: string;

before(async () => {
  logDir = await mkdtemp(join(tmpdir(), 'tscri-logs-'));
  f = await startPodFixture({
    name: 'e2e',
    config: '[metrics]\naddress = "127.0.0.1:0"\n',
    image: { config: { Env: ['PATH=/bin', 'FROM_IMAGE=yes'], Cmd: ['sh'], WorkingDir: '/' } },
  });
  ({ registry, d, image, tag } = f);
  network = f.network!;
});

after(async () => {
  await f?.cleanup();
  await rm(logDir, { recursive: true, force: true });
});

async function pod(name: string, extra: Record<string, any> = {}): Promise<{ id: string; config: any }> {
  const config = {
    metadata: { name, namespace: 'e2e', uid: `uid-${name}-${tag}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  f.pods.push(pod_sandbox_id);
  return { id: pod_sandbox_id, config };
}

async function run(p: { id: string; config: any }, name: string, cfg: Record<string, any>): Promise<string> {
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id: p.id,
    config: { metadata: { name }, image: { image }, log_path: `${name}.log`, ...cfg },
    sandbox_config: p.config,
  });
  await d.call('StartContainer', { container_id });
  return container_id;
}

async function waitExit(id: string): Promise<any> {
  for (let i = 0; i < 200; i++) {
    const { status: s } = await d.call('ContainerStatus', { container_id: id });
    if (s.state === 'CONTAINER_EXITED') return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`container ${id} did not exit`);
}

test('a container runs with the image and request settings, logs, and exits with its code', async () => {
  const p = await pod('basic');
  const id = await run(p, 'hello', {
    command: ['/bin/sh', '-c'],
    args: ['echo "uid=$(id -u) gid=$(id -g) cwd=$(pwd) from=$FROM_IMAGE req=$FROM_REQUEST host=$(hostname)"; echo err >&2; exit 7'],
    working_dir: '/tmp',
    envs: [{ key: 'FROM_REQUEST', value: Buffer.from('set') }],
    linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 100 } } },
  });
  const s = await waitExit(id);
  assert.equal(s.exit_code, 7);
  assert.equal(s.reason, 'Error');
  assert.equal(s.image_id, (await d.call('ImageStatus', { image: { image } })).image.id);
  const log = await readFile(join(logDir, 'basic', 'hello.log'), 'utf8');
  assert.match(log, /^\S+ stdout F uid=1000 gid=100 cwd=\/tmp from=yes req=set host=basic$/m);
  assert.match(log, /^\S+ stderr F err$/m);
  await d.call('RemoveContainer', { container_id: id });
});

test('the primary group is a supplementary group of the process and of ContainerStatus.user', async () => {
  const p = await pod('groups');
  const id = await run(p, 'ids', {
    command: ['sh', '-c', 'grep ^Groups: /proc/self/status; sleep 30'],
    linux: { security_context: { run_as_user: { value: 4321 }, run_as_group: { value: 3000 }, supplemental_groups: [4000, 2000] } },
  });
  const out = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'grep ^Groups: /proc/self/status'], timeout: 10 });
  assert.match(Buffer.from(out.stdout).toString(), /^Groups:\s+2000 3000 4000\s*$/m);
  const { status: s } = await d.call('ContainerStatus', { container_id: id });
  assert.deepEqual(s.user.linux, { uid: 4321, gid: 3000, supplemental_groups: [3000, 2000, 4000] });
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('read-only rootfs, dropped NET_RAW and the default seccomp profile are enforced', async () => {
  const p = await pod('secure');
  const id = await run(p, 'locked', {
    command: [
      '/bin/sh',
      '-c',
      'touch /x 2>/dev/null && echo rootfs=rw || echo rootfs=ro; grep CapEff /proc/self/status; grep Seccomp: /proc/self/status; sleep 30',
    ],
    linux: { security_context: { readonly_rootfs: true, capabilities: { drop_capabilities: ['NET_RAW'] }, seccomp: { profile_type: 'RuntimeDefault' } } },
  });
  const out = await d.call('ExecSync', {
    container_id: id,
    cmd: ['/bin/sh', '-c', 'cat /proc/1/status | grep -E "CapEff|Seccomp:"; touch /y || echo ro'],
    timeout: 10,
  });
  const text = Buffer.from(out.stdout).toString();
  const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(text)![1]}`);
  assert.equal(capEff & (1n << 13n), 0n, 'CAP_NET_RAW is dropped');
  assert.notEqual(capEff & (1n << 0n), 0n, 'CAP_CHOWN is kept');
  assert.match(text, /Seccomp:\s+2/);
  assert.match(text + Buffer.from(out.stderr).toString(), /ro|Read-only/);
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('ExecSync returns output and exit code; a timeout answers DEADLINE_EXCEEDED', async () => {
  const p = await pod('exec');
  const id = await run(p, 'sleeper', { command: ['sleep', '300'] });
  const out = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'echo hi; echo oops >&2; exit 4'], timeout: 10 });
  assert.equal(Buffer.from(out.stdout).toString(), 'hi\n');
  assert.equal(Buffer.from(out.stderr).toString(), 'oops\n');
  assert.equal(out.exit_code, 4);
  await assert.rejects(d.call('ExecSync', { container_id: id, cmd: ['sleep', '100'], timeout: 1 }), (e: any) => e.code === status.DEADLINE_EXCEEDED);
  // Gone at once, not even a zombie: the next exec must not see it (critest checks this).
  const left = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'ps -o stat,args | grep "[s]leep 100" || true'], timeout: 10 });
  assert.equal(Buffer.from(left.stdout).toString(), '');
  // A shell's children go too, even when one leaves the exec's session.
  await assert.rejects(
    d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'sleep 31 & setsid sleep 32 & sleep 33'], timeout: 1 }),
    (e: any) => e.code === status.DEADLINE_EXCEEDED && /timed out/.test(e.details),
  );
  const children = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'ps -o stat,args | grep "[s]leep 3[123]" || true'], timeout: 10 });
  assert.equal(Buffer.from(children.stdout).toString(), '');
  const { stats } = await d.call('ContainerStats', { container_id: id });
  assert.ok(stats.memory.working_set_bytes.value > 0);
  assert.ok(stats.cpu.usage_core_nano_seconds.value > 0);
  assert.equal(typeof stats.writable_layer.used_bytes.value, 'number');
  await d.call('StopContainer', { container_id: id, timeout: 1 });
  assert.equal((await d.call('ContainerStatus', { container_id: id })).status.state, 'CONTAINER_EXITED');
  await d.call('RemoveContainer', { container_id: id });
  await d.call('RemoveContainer', { container_id: id });
});

test('streaming exec over SPDY and port-forward to busybox httpd in the pod', async () => {
  const p = await pod('stream');
  const id = await run(p, 'web', { command: ['sh', '-c', 'echo served > /var/www/index.html; httpd -f -p 127.0.0.1:8080 -h /var/www'] });
  const { url } = await d.call('Exec', { container_id: id, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], stdout: true, stderr: true });
  const up = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io']);
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error' });
  const stdout = await client.open({ streamtype: 'stdout' });
  const stderr = await client.open({ streamtype: 'stderr' });
  await Promise.all([error.ended, stdout.ended, stderr.ended]);
  assert.equal(stdout.text(), 'out\n');
  assert.equal(stderr.text(), 'err\n');
  assert.deepEqual(JSON.parse(error.text()).details.causes, [{ reason: 'ExitCode', message: '3' }]);

  for (let i = 0; i < 50; i++) {
    const ready = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'netstat -ltn | grep -c 8080'], timeout: 5 });
    if (ready.exit_code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const pf = await d.call('PortForward', { pod_sandbox_id: p.id, port: [8080] });
  const pfUp = await upgrade(pf.url, 'SPDY/3.1', ['portforward.k8s.io']);
  const pfClient = new SpdyClient(pfUp.socket!);
  await pfClient.open({ streamtype: 'error', port: '8080', requestid: '0' });
  const data = await pfClient.open({ streamtype: 'data', port: '8080', requestid: '0' });
  await data.write('GET /index.html HTTP/1.0\r\n\r\n');
  await data.ended;
  assert.match(data.text(), /200 OK[\s\S]*served/);
  pfClient.destroy();
  await d.call('StopContainer', { container_id: id, timeout: 1 });
  await d.call('RemoveContainer', { container_id: id });
});

test('a memory limit that is exceeded reads OOMKilled; limits land in the cgroup', async () => {
  const p = await pod('oom');
  const id = await run(p, 'hog', {
    command: [
      'sh',
      '-c',
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; x=$(head -c 80000000 /dev/zero | tr "\\0" a); echo survived',
    ],
    linux: {
      resources: {
        memory_limit_in_bytes: 32 * 1024 * 1024,
        memory_swap_limit_in_bytes: 32 * 1024 * 1024,
        cpu_shares: 512,
        cpu_quota: 50000,
        cpu_period: 100000,
      },
    },
  });
  const s = await waitExit(id);
  assert.equal(s.reason, 'OOMKilled');
  assert.match(await readFile(join(logDir, 'oom', 'hog.log'), 'utf8'), /33554432/);
  await d.call('RemoveContainer', { container_id: id });
});

test('metrics: cAdvisor-named samples of a running container and of the pod network, lined up with their descriptors', async () => {
  const p = await pod('metrics');
  const limit = 64 * 1024 * 1024;
  const id = await run(p, 'worker', {
    command: ['sh', '-c', 'sleep 300 & exec sleep 301'],
    linux: { resources: { memory_limit_in_bytes: limit, memory_swap_limit_in_bytes: limit, cpu_shares: 512, cpu_quota: 20000, cpu_period: 100000 } },
  });
  await d.call('ExecSync', {
    container_id: id,
    cmd: ['sh', '-c', 'mkdir -p /var/lib/t && for i in 1 2 3; do echo hi > /var/lib/t/f$i; done; ping -c 1 -W 1 ' + network.gateway + ' || true'],
    timeout: 10,
  });
  const keys = new Map<string, string[]>((await d.call('ListMetricDescriptors', {})).descriptors.map((m: any) => [m.name, m.label_keys]));
  const all = (await d.call('ListPodSandboxMetrics', {})).pod_metrics.find((m: any) => m.pod_sandbox_id === p.id);
  assert.ok(all, 'the pod is listed');
  const ours = all.container_metrics.find((c: any) => c.container_id === id);
  const metrics = [...all.metrics, ...ours.metrics];
  for (const m of metrics) assert.equal(m.label_values.length, keys.get(m.name)?.length, `${m.name} has one value per label key`);
  const value = (name: string, extra: string[] = []) => {
    const m = metrics.find((x: any) => x.name === name && extra.every((e, i) => x.label_values[5 + i] === e));
    assert.ok(m, `${name} ${extra.join(',')} is reported`);
    return Number(m.value.value);
  };
  assert.deepEqual(ours.metrics[0].label_values.slice(0, 5), [id, image, 'e2e', 'metrics', 'worker']);
  assert.equal(value('container_spec_memory_limit_bytes'), limit);
  assert.equal(value('container_spec_cpu_quota'), 20000);
  assert.equal(value('container_spec_cpu_period'), 100000);
  assert.ok(value('container_spec_cpu_shares') > 0);
  assert.equal(value('container_processes'), 2);
  assert.ok(value('container_threads') >= 2);
  assert.ok(value('container_file_descriptors') >= 3, 'stdio of each process');
  assert.ok(value('container_memory_usage_bytes') > 0);
  assert.ok(value('container_fs_usage_bytes') > 0, 'the files written are in the writable layer');
  assert.ok(value('container_fs_limit_bytes') > value('container_fs_usage_bytes'));
  const now = Date.now() / 1000;
  assert.ok(Math.abs(value('container_start_time_seconds') - now) < 600);
  assert.ok(value('container_network_transmit_packets_total', ['eth0']) >= 1, 'the pod network is reported per interface');
  assert.equal(
    metrics.some((m: any) => m.label_values.includes('lo')),
    false,
    'loopback is left out',
  );
  await d.call('StopContainer', { container_id: id, timeout: 1 });
  const after = (await d.call('ListPodSandboxMetrics', {})).pod_metrics.find((m: any) => m.pod_sandbox_id === p.id);
  assert.equal(
    after.container_metrics.some((c: any) => c.container_id === id),
    false,
    'a stopped container has no samples',
  );
  await d.call('RemoveContainer', { container_id: id });
});

test('unknown images and pods, and bad requests, get clear errors', async () => {
  const p = await pod('errors');
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: p.id, config: { metadata: { name: 'x' }, image: { image: 'never/pulled:1' } }, sandbox_config: p.config }),
    (e: any) => e.code === status.NOT_FOUND,
  );
  await assert.rejects(
    d.call('CreateContainer', {
      pod_sandbox_id: p.id,
      config: { metadata: { name: 'y' }, image: { image }, linux: { security_context: { run_as_username: 'nobody-here' } } },
      sandbox_config: p.config,
    }),
    (e: any) => e.code === status.INVALID_ARGUMENT && /nobody-here/.test(e.details),
  );
  await assert.rejects(d.call('Exec', { container_id: 'missing', cmd: ['sh'], stdout: true }), (e: any) => e.code === status.NOT_FOUND);
  // Nothing of the refused creates reached the runtime: it knows only containers tscri lists
  // (a container removed earlier may still be leaving it, for a moment, after its removal answered).
  const unknown = async () => {
    const known = new Set((await d.call('ListContainers', {})).containers.map((c: any) => c.id));
    const inRuntime = execFileSync('runc', ['--root', join(d.dir, 'state', 'runtime', 'runc'), 'list', '-q'], { encoding: 'utf8' });
    return inRuntime.split('\n').filter((id) => id && !known.has(id));
  };
  for (let i = 0; i < 100 && (await unknown()).length; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await unknown(), []);
});

test('a Localhost seccomp profile that is not a profile is refused without quoting the file', async (t) => {
  const p = await pod('seccomp-local');
  const dir = await mkdtemp(join(tmpdir(), 'tscri-seccomp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const secret = `root:SECRET-${tag}:19000:0:99999:7:::`;
  const files = {
    shadowLike: [join(dir, 'shadow'), `${secret}\n`],
    jsonButNotProfile: [join(dir, 'doc.json'), JSON.stringify({ password: secret })],
    wrongTypes: [join(dir, 'typed.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: { names: secret } })],
  } as const;
  for (const [path, body] of Object.values(files)) await writeFile(path, body);
  for (const ref of [...Object.values(files).map(([path]) => path), dir, '/dev/zero', join(dir, 'missing')]) {
    const err = await d
      .call('CreateContainer', {
        pod_sandbox_id: p.id,
        config: {
          metadata: { name: `local-${randomBytes(2).toString('hex')}` },
          image: { image },
          linux: { security_context: { seccomp: { profile_type: 'Localhost', localhost_ref: ref } } },
        },
        sandbox_config: p.config,
      })
      .catch((e: any) => e);
    assert.equal(err.code, status.INVALID_ARGUMENT, `${ref}: ${err.details}`);
    assert.match(err.details, /seccomp profile/);
    assert.doesNotMatch(err.details, /SECRET|root:/, `${ref}: ${err.details}`);
  }
});

test('a container asking for the node network, IPC or pid in a pod that has its own stays in the pod', async () => {
  const p = await pod('ns-follow');
  const id = await run(p, 'wants-host', {
    command: ['/bin/sleep', '30'],
    linux: { security_context: { namespace_options: { network: 'NODE', ipc: 'NODE', pid: 'NODE' } } },
  });
  const out = await d.call('ExecSync', { container_id: id, cmd: ['/bin/sh', '-c', 'for n in net ipc pid; do readlink /proc/self/ns/$n; done'], timeout: 10 });
  const [net, ipc, pid] = Buffer.from(out.stdout).toString().trim().split('\n');
  assert.notEqual(net, readlinkSync('/proc/self/ns/net'), 'not in the node network');
  assert.notEqual(ipc, readlinkSync('/proc/self/ns/ipc'), 'not in the node IPC namespace');
  assert.notEqual(pid, readlinkSync('/proc/self/ns/pid'), 'not in the node pid namespace');
  const { info } = await d.call('PodSandboxStatus', { pod_sandbox_id: p.id, verbose: true });
  assert.equal(net, `net:[${statSync(JSON.parse(info.info).namespaces.network).ino}]`, 'in the pod network');
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('CreateContainer racing RemovePodSandbox leaves no container behind, and the removal succeeds', { timeout: 120_000 }, async () => {
  for (const delay of [0, 10, 30, 60, 120]) {
    const p = await pod(`race-${delay}`);
    const create = d.call('CreateContainer', {
      pod_sandbox_id: p.id,
      config: { metadata: { name: 'racer' }, image: { image }, command: ['/bin/sleep', '300'], log_path: 'racer.log' },
      sandbox_config: p.config,
    });
    await new Promise((r) => setTimeout(r, delay));
    const [created, removed] = await Promise.allSettled([create, d.call('RemovePodSandbox', { pod_sandbox_id: p.id })]);
    assert.equal(removed.status, 'fulfilled', `RemovePodSandbox after ${delay} ms: ${(removed as any).reason?.details}`);
    if (created.status === 'rejected') {
      assert.ok(
        [status.NOT_FOUND, status.FAILED_PRECONDITION].includes(created.reason.code),
        `CreateContainer after ${delay} ms: ${created.reason.code} ${created.reason.details}`,
      );
    } else {
      const start = await d.call('StartContainer', { container_id: created.value.container_id }).catch((e: any) => e);
      assert.ok([status.NOT_FOUND, status.FAILED_PRECONDITION].includes(start.code), `a container of a removed pod cannot start: ${start.code}`);
    }
    assert.deepEqual(
      (await d.call('ListContainers', { filter: { pod_sandbox_id: p.id } })).containers,
      [],
      `no container of the removed pod is left (${delay} ms)`,
    );
    const procs = execFileSync('sh', ['-c', `ps -eo args | grep -F "${d.state}" | grep -E "[c]onmon|[r]unc init" || true`], { encoding: 'utf8' }).trim();
    assert.equal(procs, '', `no process of the removed pod is left (${delay} ms)`);
  }
});

/** Every path under dir, without following symlinks or leaving it, to a depth. */
function walk(dir: string, depth: number, out: string[] = []): string[] {
  if (depth === 0 || out.length > 20_000) return out;
  let entries: import('node:fs').Dirent[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    out.push(path);
    if (e.isDirectory()) walk(path, depth - 1, out);
  }
  return out;
}

/** Runs a shell script as the host user nobody, paths on its stdin. */
function asNobody(script: string, input = ''): string {
  return execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', '/bin/sh', '-c', script], { input, encoding: 'utf8' });
}

test('host users reach nothing under root and state, while containers run as root and as other users', { timeout: 120_000 }, async (t) => {
  // Directories above root and state are usually world-searchable (/var/lib, /run).
  chmodSync(d.dir, 0o755);
  t.after(() => chmodSync(d.dir, 0o700));
  const p = await pod('modes');
  const asUser = await run(p, 'as-user', {
    command: ['/bin/sh', '-c', 'echo shared > /dev/shm/by-user && cat /dev/shm/by-user /etc/hostname && sleep 300'],
    linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 1000 } } },
  });
  const asRoot = await run(p, 'as-root', { command: ['/bin/sleep', '300'] });
  const out = await d.call('ExecSync', {
    container_id: asUser,
    cmd: ['/bin/sh', '-c', 'id -u; cat /dev/shm/by-user; cat /etc/hostname; ls /bin/busybox'],
    timeout: 10,
  });
  assert.equal(out.exit_code, 0, Buffer.from(out.stderr).toString());
  assert.deepEqual(Buffer.from(out.stdout).toString().trim().split('\n'), ['1000', 'shared', 'modes', '/bin/busybox']);
  assert.equal((await d.call('ExecSync', { container_id: asRoot, cmd: ['/bin/sh', '-c', 'id -u; cat /dev/shm/by-user'], timeout: 10 })).exit_code, 0);

  const paths = [...walk(d.root, 6), ...walk(d.state, 6)];
  const { info } = await d.call('PodSandboxStatus', { pod_sandbox_id: p.id, verbose: true });
  const podInfo = JSON.parse(info.info);
  const rootfs = join(d.state, 'containers', asUser, 'rootfs');
  for (const wanted of [join(rootfs, 'bin', 'busybox'), podInfo.files.shm, podInfo.namespaces.network, podInfo.files.resolvConf])
    assert.ok(paths.includes(wanted), wanted);
  const reachable = asNobody('while IFS= read -r p; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done', paths.join('\n') + '\n')
    .split('\n')
    .filter(Boolean);
  // Only the names directly in state can be looked up (it is searchable, not listable); nothing below.
  const beyond = reachable.filter((path) => dirname(path) !== d.state);
  assert.deepEqual(beyond.slice(0, 10), [], `a host user reaches ${beyond.length} paths under root or state`);
  assert.notEqual(asNobody(`ls ${d.state} >/dev/null 2>&1 && echo listed || echo refused`).trim(), 'listed');
  assert.equal(asNobody(`echo x > ${podInfo.files.shm}/by-host 2>/dev/null && echo wrote || echo refused`).trim(), 'refused');
  assert.equal(asNobody(`${join(rootfs, 'bin', 'busybox')} true 2>/dev/null && echo ran || echo refused`).trim(), 'refused');
  for (const id of [asUser, asRoot]) {
    await d.call('StopContainer', { container_id: id, timeout: 0 });
    await d.call('RemoveContainer', { container_id: id });
  }
});

test('a container in TARGET pid mode sees the processes of its target, as kubectl debug --target needs', async () => {
  const p = await pod('target');
  const app = await run(p, 'app', { command: ['sleep', '4242'] });
  const ns = (pid: string) => ({
    linux: { security_context: { namespace_options: { network: 'POD', pid, ipc: 'POD', target_id: pid === 'TARGET' ? app : '' } } },
  });
  const debug = await run(p, 'debug', { command: ['sleep', '600'], ...ns('TARGET') });
  const ps = await d.call('ExecSync', { container_id: debug, cmd: ['ps', '-o', 'args'], timeout: 10 });
  assert.match(Buffer.from(ps.stdout).toString(), /sleep 4242/);
  const create = (name: string, extra: object) =>
    d.call('CreateContainer', {
      pod_sandbox_id: p.id,
      config: { metadata: { name }, image: { image }, command: ['true'], ...extra },
      sandbox_config: p.config,
    });
  const noTarget = { linux: { security_context: { namespace_options: { pid: 'TARGET' } } } };
  await assert.rejects(create('t1', noTarget), (e: any) => e.code === status.INVALID_ARGUMENT && /target_id/.test(e.details));
  const unknown = { linux: { security_context: { namespace_options: { pid: 'TARGET', target_id: 'feedbeef' } } } };
  await assert.rejects(create('t2', unknown), (e: any) => e.code === status.NOT_FOUND && /feedbeef/.test(e.details));
  await d.call('StopContainer', { container_id: app, timeout: 0 });
  await assert.rejects(create('t3', ns('TARGET')), (e: any) => e.code === status.FAILED_PRECONDITION && /not running/.test(e.details));
  for (const id of [debug, app]) {
    await d.call('StopContainer', { container_id: id, timeout: 0 });
    await d.call('RemoveContainer', { container_id: id });
  }
});

async function spdyExec(containerId: string, cmd: string[], options: { stdin?: boolean; tty?: boolean } = {}) {
  const { url } = await d.call('Exec', {
    container_id: containerId,
    cmd,
    stdout: true,
    stderr: !options.tty,
    stdin: Boolean(options.stdin),
    tty: Boolean(options.tty),
  });
  const up = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io']);
  const client = new SpdyClient(up.socket!);
  const error = await client.open({ streamtype: 'error' });
  const stdin = options.stdin ? await client.open({ streamtype: 'stdin' }) : undefined;
  const stdout = await client.open({ streamtype: 'stdout' });
  const stderr = options.tty ? undefined : await client.open({ streamtype: 'stderr' });
  const resize = options.tty ? await client.open({ streamtype: 'resize' }) : undefined;
  return { client, error, stdin, stdout, stderr, resize };
}

test('streaming exec: interactive stdin, terminal resize, 50 at once, and a vanished client leaves no process', { timeout: 120_000 }, async () => {
  const p = await pod('interactive');
  const id = await run(p, 'shell', { command: ['sleep', '600'] });
  const cat = await spdyExec(id, ['cat'], { stdin: true });
  await cat.stdout.replied;
  await cat.stdin!.write('echo me\n');
  await cat.stdin!.end();
  await cat.error.ended;
  assert.equal(cat.stdout.text(), 'echo me\n');

  const many = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const s = await spdyExec(id, ['sh', '-c', `echo n${i}`]);
      await s.error.ended;
      return s.stdout.text();
    }),
  );
  assert.deepEqual(
    many,
    Array.from({ length: 50 }, (_, i) => `n${i}\n`),
  );

  const tty = await spdyExec(id, ['sh', '-c', 'sleep 0.5; stty size'], { tty: true });
  await tty.resize!.write(JSON.stringify({ Width: 120, Height: 40 }) + '\n');
  await tty.error.ended;
  assert.match(tty.stdout.text(), /40 120/);

  const gone = await spdyExec(id, ['sleep', '777']);
  await gone.stdout.replied;
  for (let i = 0; i < 50; i++) {
    const ps = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'ps | grep -c "[s]leep 777"'], timeout: 5 });
    if (Buffer.from(ps.stdout).toString().trim() === '1') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  gone.client.destroy();
  let count = '1';
  for (let i = 0; i < 50 && count !== '0'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const ps = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', 'ps | grep -c "[s]leep 777"'], timeout: 5 });
    count = Buffer.from(ps.stdout).toString().trim();
  }
  assert.equal(count, '0', 'the exec process ends with its client');
  const conmons = execFileSync('sh', ['-c', `ps -eo args | grep -c "[c]onmon.*--exec" || true`], { encoding: 'utf8' }).trim();
  assert.equal(conmons, '0', 'no exec conmon is left');
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('attach sees the output of a running container and detaching leaves it running', { timeout: 60_000 }, async () => {
  const p = await pod('attach');
  const id = await run(p, 'ticker', { command: ['sh', '-c', 'while true; do echo tick; sleep 0.2; done'] });
  const { url } = await d.call('Attach', { container_id: id, stdout: true, stderr: true });
  const up = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io']);
  const client = new SpdyClient(up.socket!);
  await client.open({ streamtype: 'error' });
  const stdout = await client.open({ streamtype: 'stdout' });
  await client.open({ streamtype: 'stderr' });
  for (let i = 0; i < 50 && !stdout.text().includes('tick'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(stdout.text(), /tick/);
  client.destroy();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await d.call('ContainerStatus', { container_id: id })).status.state, 'CONTAINER_RUNNING');
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test("verbose PodSandboxStatus (crictl inspectp) gives a pid in the pod's namespaces when the pod has no infra process", async () => {
  const p = await pod('inspectp');
  const info = async () => JSON.parse((await d.call('PodSandboxStatus', { pod_sandbox_id: p.id, verbose: true })).info.info);
  const empty = await info();
  assert.equal(empty.pid, 0, 'no process yet: the namespace files are the way in');
  assert.equal(empty.pidOf, 'none');
  assert.ok(empty.namespaces.network.startsWith(d.state));
  const id = await run(p, 'sleeper', { command: ['sleep', '600'] });
  const running = await info();
  assert.ok(running.pid > 0);
  assert.equal(running.pidOf, 'container');
  const { statSync } = await import('node:fs');
  assert.equal(statSync(`/proc/${running.pid}/ns/net`).ino, statSync(empty.namespaces.network).ino, "the pid is in the pod's network namespace");
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  assert.equal((await info()).pid, 0);
  await d.call('RemoveContainer', { container_id: id });
});

test('the Prometheus endpoint reports pulls, pods and containers by state, streaming sessions, CNI and runc timings', async () => {
  const port = JSON.parse(
    d
      .output()
      .split('\n')
      .find((l) => l.includes('serving Prometheus metrics'))!,
  ).port;
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  };
  const before = await scrape();
  const value = (families: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string> = {}) => sample(families, name, labels) ?? 0;

  await assert.rejects(d.call('PullImage', { image: { image: `${registry.host}/e2e/absent:v1` } }), (e: any) => e.code === status.NOT_FOUND);
  await pushBusybox(registry.url, 'e2e/metrics-busybox', 'v1', { config: { Cmd: ['sh'] } });
  await d.call('PullImage', { image: { image: `${registry.host}/e2e/metrics-busybox:v1` } });
  const p = await pod('prom');
  const id = await run(p, 'sleeper', { command: ['sleep', '600'] });
  const exec = await spdyExec(id, ['sh', '-c', 'echo hi']);
  await exec.error.ended;

  const after = await scrape();
  assert.equal(value(after, 'tscri_image_pulls_total', { result: 'success' }) - value(before, 'tscri_image_pulls_total', { result: 'success' }), 1);
  assert.equal(value(after, 'tscri_image_pulls_total', { result: 'failure' }) - value(before, 'tscri_image_pulls_total', { result: 'failure' }), 1);
  assert.equal(
    value(after, 'tscri_image_pull_failures_total', { reason: 'NOT_FOUND' }) - value(before, 'tscri_image_pull_failures_total', { reason: 'NOT_FOUND' }),
    1,
  );
  // The base layer is shared with the image pulled before: only the config and the top layer arrive.
  const pulled = JSON.parse(
    d
      .output()
      .split('\n')
      .filter((l) => l.includes('"image pulled"') && l.includes('metrics-busybox'))
      .at(-1)!,
  );
  assert.ok(pulled.bytes > 0);
  assert.equal(value(after, 'tscri_image_pull_bytes_total') - value(before, 'tscri_image_pull_bytes_total'), pulled.bytes, 'the bytes received are counted');
  assert.equal(
    value(after, 'tscri_image_pull_duration_seconds_count', { result: 'success' }) -
      value(before, 'tscri_image_pull_duration_seconds_count', { result: 'success' }),
    1,
  );
  assert.equal(value(after, 'tscri_image_pulls_in_flight'), 0);
  assert.ok(value(after, 'tscri_pods', { state: 'ready' }) >= 1);
  assert.ok(value(after, 'tscri_containers', { state: 'running' }) >= 1);
  assert.ok(
    value(after, 'tscri_stream_sessions_total', { kind: 'exec', protocol: 'spdy' }) >
      value(before, 'tscri_stream_sessions_total', { kind: 'exec', protocol: 'spdy' }),
  );
  assert.ok(value(after, 'tscri_cni_plugin_duration_seconds_count', { command: 'ADD', plugin: 'bridge', result: 'ok' }) >= 1);
  for (const command of ['create', 'start']) {
    assert.ok(value(after, 'tscri_oci_runtime_duration_seconds_count', { command, result: 'ok' }) >= 1, command);
  }
  assert.ok(value(after, 'tscri_grpc_requests_total', { rpc: 'PullImage', code: 'NOT_FOUND' }) >= 1);
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
    'tscri_process_resident_memory_bytes',
    'tscri_process_heap_used_bytes',
  ]) {
    assert.ok(value(after, name) > 0, name);
  }
  // Low cardinality: no label value is an id, a name or an image reference.
  const values = [...after.values()].flatMap((f) => f.series.flatMap((s) => Object.values(s.labels)));
  for (const v of values) {
    assert.ok(!v.includes(id.slice(0, 12)) && !v.includes(p.id.slice(0, 12)) && !v.includes('busybox') && !v.includes('prom'), `label value ${v}`);
  }
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});
