import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSpec, processArgs, processEnv, namespaces, type SpecInput } from '../../../src/oci/spec.ts';
import { resolveUser } from '../../../src/oci/user.ts';
import { capabilities, capabilitiesInMask, DEFAULT_CAPABILITIES, apparmorProfile, seccompChoice } from '../../../src/oci/security.ts';
import { mergeResources, resourcesToOci, sharesToWeight } from '../../../src/oci/resources.ts';
import { requestMounts, mergeMounts, defaultMounts } from '../../../src/oci/mounts.ts';
import { ociSeccomp } from '../../../src/oci/seccomp.ts';
import { SpecError } from '../../../src/oci/errors.ts';

const passwd = 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n';
const group = 'root:x:0:\nusers:x:100:user,web\nuser:x:1000:\nwww:x:33:\naudio:x:29:user\n';

function sandbox(extra: Record<string, any> = {}): any {
  return {
    id: 'pod1',
    config: { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, linux: { security_context: {} } },
    namespaces: { network: '/run/ns/net', ipc: '/run/ns/ipc', uts: '/run/ns/uts' },
    files: { hostname: '/pod/hostname', hosts: '/pod/hosts', resolvConf: '/pod/resolv.conf', shm: '/pod/shm' },
    ...extra,
  };
}

function input(config: Record<string, any> = {}, image: Record<string, any> = { Cmd: ['sh'] }, host: Record<string, any> = {}): SpecInput {
  return {
    containerId: 'c1',
    config: { metadata: { name: 'c' }, command: [], args: [], envs: [], mounts: [], devices: [], annotations: {}, ...config } as any,
    sandbox: sandbox(),
    image: { config: image, name: 'busybox' },
    rootfs: '/rootfs',
    cgroupsPath: '/tscri/pod-1/ctr-c1',
    etcFiles: { passwd, group },
    host: {
      cgroupVersion: 'v1',
      apparmorEnabled: false,
      apparmorDefaultProfile: '',
      rroSupported: true,
      oomScoreAdjFloor: 0,
      restrictOomScoreAdj: true,
      hostDevices: [],
      ...host,
    },
  };
}

test('command and args merge with the image Entrypoint and Cmd as kubelet expects', () => {
  const image = { Entrypoint: ['/entry'], Cmd: ['--default'] };
  assert.deepEqual(processArgs([], [], image), ['/entry', '--default']);
  assert.deepEqual(processArgs([], ['--mine'], image), ['/entry', '--mine']);
  assert.deepEqual(processArgs(['/cmd'], [], image), ['/cmd']);
  assert.deepEqual(processArgs(['/cmd'], ['a'], image), ['/cmd', 'a']);
  assert.throws(() => processArgs([], [], {}), SpecError);
});

test('request env overrides the image env, and PATH is always present', () => {
  assert.deepEqual(
    processEnv(
      ['A=1', 'PATH=/bin'],
      [
        { key: 'A', value: '2' },
        { key: 'B', value: Buffer.from('x=y') },
      ],
    ),
    ['A=2', 'PATH=/bin', 'B=x=y'],
  );
  assert.match(processEnv([], [])[0]!, /^PATH=/);
  assert.match(processEnv(null, [])[0]!, /^PATH=/);
});

test('HOSTNAME is the pod hostname unless the image or the request sets it', () => {
  const withHost = (hostname: string) => ({ ...input(), sandbox: sandbox({ hostname }) });
  assert.ok(buildSpec(withHost('web-0')).process.env.includes('HOSTNAME=web-0'));
  assert.ok(buildSpec({ ...withHost('web-0'), image: { config: { Cmd: ['sh'], Env: ['HOSTNAME=image'] }, name: 'b' } }).process.env.includes('HOSTNAME=image'));
  assert.ok(
    buildSpec({ ...withHost('web-0'), config: { ...input().config, envs: [{ key: 'HOSTNAME', value: 'mine' }] } as any }).process.env.includes('HOSTNAME=mine'),
  );
  // Records written before the hostname was kept: the request's.
  assert.ok(
    buildSpec({ ...input(), sandbox: sandbox({ config: { metadata: { name: 'p' }, hostname: 'from-config' } }) }).process.env.includes('HOSTNAME=from-config'),
  );
});

test('users resolve through the container /etc/passwd and /etc/group', () => {
  assert.deepEqual(resolveUser({ imageUser: 'user' }, { passwd, group }), { uid: 1000, gid: 1000, additionalGids: [1000, 29, 100], username: 'user' });
  assert.deepEqual(resolveUser({ imageUser: 'user' }, { passwd, group }).additionalGids, [1000, 29, 100]);
  assert.deepEqual(resolveUser({ imageUser: 'user', strict: true, supplementalGroups: [5] }, { passwd, group }).additionalGids, [1000, 5]);
  assert.equal(resolveUser({ imageUser: '33:www' }, { passwd, group }).gid, 33);
  assert.equal(resolveUser({ imageUser: 'web:users' }, { passwd, group }).gid, 100);
  assert.deepEqual(resolveUser({ runAsUser: 4242 }, { passwd, group }), { uid: 4242, gid: 0, additionalGids: [0], username: '' });
  assert.equal(resolveUser({ runAsUser: 1000, runAsGroup: 7 }, { passwd, group }).gid, 7);
  assert.equal(resolveUser({ runAsUsername: 'web' }, { passwd, group }).uid, 33);
  assert.throws(() => resolveUser({ runAsUsername: 'ghost' }, { passwd, group }), /ghost/);
  assert.throws(() => resolveUser({ imageUser: 'user:nogroup' }, { passwd, group }), /nogroup/);
  assert.equal(resolveUser({}, {}).uid, 0);
  assert.throws(() => buildSpec(input({ linux: { security_context: { run_as_group: { value: 7 } } } })), /run_as_group is set without run_as_user/);
});

test('all capabilities means those in the daemon bounding set', () => {
  const bounding = capabilitiesInMask('000001fffeffffff');
  assert.equal(bounding.length, 40);
  assert.ok(!bounding.includes('CAP_SYS_RESOURCE'));
  assert.deepEqual(capabilities([], [], true, bounding), bounding);
  assert.deepEqual(capabilities(['ALL'], [], false, bounding), bounding);
  assert.deepEqual(
    capabilities(['ALL'], ['NET_RAW'], false, bounding),
    bounding.filter((c) => c !== 'CAP_NET_RAW'),
  );
  assert.equal(capabilitiesInMask('0').length, 0);
});

test('capabilities: defaults, add, drop and ALL', () => {
  assert.deepEqual(capabilities(), DEFAULT_CAPABILITIES);
  assert.ok(!capabilities([], ['NET_RAW']).includes('CAP_NET_RAW'));
  assert.ok(capabilities(['SYS_ADMIN']).includes('CAP_SYS_ADMIN'));
  assert.deepEqual(capabilities(['NET_BIND_SERVICE'], ['ALL']), ['CAP_NET_BIND_SERVICE']);
  assert.ok(capabilities(['ALL']).includes('CAP_SYS_MODULE'));
  assert.ok(!capabilities(['ALL'], ['CAP_SYS_MODULE']).includes('CAP_SYS_MODULE'));
  assert.throws(() => capabilities(['NOT_A_CAP']), /unknown capability/);
  assert.ok(capabilities([], [], true).includes('CAP_SYS_ADMIN'));
});

test('a default container joins the pod namespaces and gets containerd defaults', () => {
  const spec = buildSpec(input());
  assert.deepEqual(spec.linux.namespaces, [
    { type: 'mount' },
    { type: 'network', path: '/run/ns/net' },
    { type: 'ipc', path: '/run/ns/ipc' },
    { type: 'uts', path: '/run/ns/uts' },
    { type: 'pid' },
  ]);
  assert.deepEqual(spec.process.args, ['sh']);
  assert.equal(spec.process.cwd, '/');
  assert.deepEqual(spec.process.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.ok(spec.linux.maskedPaths.includes('/proc/kcore'));
  assert.ok(spec.linux.readonlyPaths.includes('/proc/sys'));
  assert.equal(spec.linux.cgroupsPath, '/tscri/pod-1/ctr-c1');
  assert.equal(spec.annotations['io.kubernetes.cri.sandbox-id'], 'pod1');
  const dests = spec.mounts.map((m: any) => m.destination);
  for (const d of ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hostname', '/etc/resolv.conf', '/etc/hosts'])
    assert.ok(dests.includes(d), d);
  assert.equal(spec.mounts.find((m: any) => m.destination === '/dev/shm')?.source, '/pod/shm');
  assert.equal(spec.linux.seccomp, undefined, 'no profile asked means unconfined');
  assert.deepEqual(spec.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
});

test('pid namespace modes and host namespaces', () => {
  const sb = sandbox({ namespaces: { pid: '/proc/9/ns/pid' } });
  assert.deepEqual(
    namespaces(sb, { pid: 'POD' }, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/9/ns/pid' },
  );
  const hostPidPod = sandbox({ namespaces: {}, config: { metadata: {}, linux: { security_context: { namespace_options: { pid: 'NODE' } } } } });
  assert.equal(
    namespaces(hostPidPod, { pid: 'NODE' }, 'v1').find((n) => n.type === 'pid'),
    undefined,
  );
  // A container cannot ask for more of the node than its pod has: it follows the pod.
  assert.deepEqual(
    namespaces(sb, { pid: 'NODE' }, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/9/ns/pid' },
  );
  assert.deepEqual(
    namespaces(sandbox(), { pid: 'NODE' }, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid' },
  );
  const own = namespaces(sandbox(), { network: 'NODE', ipc: 'NODE' }, 'v2');
  assert.deepEqual(
    own.find((n) => n.type === 'network'),
    { type: 'network', path: '/run/ns/net' },
  );
  assert.deepEqual(
    own.find((n) => n.type === 'ipc'),
    { type: 'ipc', path: '/run/ns/ipc' },
  );
  const hostPod = sandbox({ namespaces: {} });
  assert.ok(namespaces(hostPod, { network: 'POD', ipc: 'POD' }, 'v2').every((n) => n.type !== 'network' && n.type !== 'ipc'));
  assert.ok(namespaces(sandbox(), {}, 'v2').some((n) => n.type === 'cgroup'));
  // No namespace_options is the proto's zero value: the pod's pid namespace.
  assert.deepEqual(
    namespaces(sb, null, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/9/ns/pid' },
  );
  assert.deepEqual(
    namespaces(sb, undefined, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/9/ns/pid' },
  );
  assert.deepEqual(
    namespaces(sb, { pid: 'CONTAINER' }, 'v1').find((n) => n.type === 'pid'),
    { type: 'pid' },
  );
  assert.throws(() => namespaces(sandbox(), { pid: 'TARGET' }, 'v1'), SpecError);
  assert.deepEqual(
    namespaces(sb, { pid: 'TARGET' }, 'v1', '/proc/42/ns/pid').find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/42/ns/pid' },
  );
});

test('privileged containers get every capability and device, no masks, no seccomp', () => {
  const inp = input(
    { linux: { security_context: { privileged: true, seccomp: { profile_type: 'RuntimeDefault' } } } },
    { Cmd: ['sh'] },
    {
      hostDevices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }],
      seccompDefaultProfile: { defaultAction: 'SCMP_ACT_ERRNO', architectures: [], syscalls: [] },
    },
  );
  assert.throws(() => buildSpec(inp), /privileged pod/);
  inp.sandbox = sandbox({ config: { metadata: {}, linux: { security_context: { privileged: true } } } });
  const spec = buildSpec(inp);
  assert.ok(spec.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  assert.deepEqual(spec.linux.maskedPaths, []);
  assert.equal(spec.linux.seccomp, undefined);
  assert.equal(spec.linux.devices[0]?.path, '/dev/fuse');
  assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  assert.equal(spec.mounts.find((m: any) => m.destination === '/sys')?.options?.includes('ro'), false);
});

test('seccomp modes and capability-conditional entries', () => {
  assert.deepEqual(seccompChoice(null), { kind: 'unconfined' });
  assert.deepEqual(seccompChoice(null, 'runtime/default'), { kind: 'runtime-default' });
  assert.deepEqual(seccompChoice({ profile_type: 'Localhost', localhost_ref: '/p.json' }), { kind: 'localhost', ref: '/p.json' });
  assert.throws(() => seccompChoice({ profile_type: 'Localhost', localhost_ref: '' }), SpecError);
  const profile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: { amd64: ['SCMP_ARCH_X86_64'] },
    syscalls: [
      { names: ['read'], action: 'SCMP_ACT_ALLOW' },
      { names: ['mount'], action: 'SCMP_ACT_ALLOW', includesCaps: ['CAP_SYS_ADMIN'] },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', excludesCaps: ['CAP_SYS_ADMIN'] },
    ],
  };
  const plain = ociSeccomp(profile, ['CAP_CHOWN'], 'amd64') as any;
  assert.deepEqual(
    plain.syscalls.map((s: any) => s.names[0]),
    ['read', 'clone'],
  );
  assert.deepEqual(plain.architectures, ['SCMP_ARCH_X86_64']);
  const admin = ociSeccomp(profile, ['CAP_SYS_ADMIN'], 'amd64') as any;
  assert.deepEqual(
    admin.syscalls.map((s: any) => s.names[0]),
    ['read', 'mount'],
  );
});

test('Localhost profiles in the Docker format: archMap, name or names, includes and excludes', () => {
  const docker = {
    defaultAction: 'SCMP_ACT_ALLOW',
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    ],
    syscalls: [
      { name: 'sethostname', action: 'SCMP_ACT_ERRNO' },
      { names: ['chmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
      { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', excludes: { arches: ['amd64'] } },
      { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64'] } },
    ],
  };
  const out = ociSeccomp(docker, ['CAP_CHOWN'], 'amd64') as any;
  assert.deepEqual(out.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  assert.deepEqual(out.syscalls, [
    { names: ['sethostname'], action: 'SCMP_ACT_ERRNO' },
    { names: ['chmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW' },
  ]);
  // Plain OCI: architectures as a list, passed through.
  assert.deepEqual((ociSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'] }, [], 'amd64') as any).architectures, [
    'SCMP_ARCH_X86_64',
  ]);
  // The deprecated path field takes only the documented forms.
  assert.deepEqual(seccompChoice(null, 'localhost//etc/p.json'), { kind: 'localhost', ref: '/etc/p.json' });
  assert.deepEqual(seccompChoice(null, 'unconfined'), { kind: 'unconfined' });
  assert.throws(() => seccompChoice(null, '/etc/p.json'), /localhost\/<path>/);
});

test('AppArmor: a named profile on a host without AppArmor is an error; RuntimeDefault is skipped', () => {
  assert.equal(apparmorProfile({ profile_type: 'RuntimeDefault' }, '', false, ''), undefined);
  assert.throws(() => apparmorProfile({ profile_type: 'Localhost', localhost_ref: 'mine' }, '', false, ''), /AppArmor is not enabled/);
  assert.equal(apparmorProfile({ profile_type: 'Localhost', localhost_ref: 'localhost/mine' }, '', true, ''), 'mine');
  assert.equal(apparmorProfile({ profile_type: 'RuntimeDefault' }, '', true, ''), 'tscri-default');
});

test('a bidirectional mount makes the root shared; host-to-container makes it a slave', () => {
  const m = (propagation: string) => ({ container_path: '/data', host_path: '/srv', propagation }) as any;
  const spec = (mounts: any[]) => buildSpec(input({ mounts })).linux.rootfsPropagation;
  assert.equal(spec([m('PROPAGATION_PRIVATE'), m('PROPAGATION_BIDIRECTIONAL')]), 'rshared');
  assert.equal(spec([m('PROPAGATION_HOST_TO_CONTAINER')]), 'rslave');
  assert.equal(spec([m('PROPAGATION_PRIVATE')]), undefined);
});

test('request mounts: read-only, recursive read-only, propagation, image sub paths', () => {
  const m = (x: Record<string, any>) =>
    ({
      container_path: '/data',
      host_path: '/srv/data',
      readonly: false,
      propagation: 'PROPAGATION_PRIVATE',
      recursive_read_only: false,
      mount_options: [],
      image: null,
      image_sub_path: '',
      ...x,
    }) as any;
  assert.deepEqual(requestMounts([m({ readonly: true })], {}, true)[0]!.options, ['rbind', 'rprivate', 'ro']);
  assert.deepEqual(requestMounts([m({ readonly: true, recursive_read_only: true })], {}, true)[0]!.options, ['rbind', 'rprivate', 'rro']);
  assert.throws(() => requestMounts([m({ readonly: true, recursive_read_only: true })], {}, false), /not supported by the pod.s runtime handler.*5\.12/);
  assert.throws(() => requestMounts([m({ recursive_read_only: true })], {}, true), /needs readonly/);
  assert.equal(requestMounts([m({ propagation: 'PROPAGATION_BIDIRECTIONAL' })], {}, true)[0]!.options![1], 'rshared');
  assert.equal(requestMounts([m({ propagation: 'PROPAGATION_HOST_TO_CONTAINER' })], {}, true)[0]!.options![1], 'rslave');
  assert.throws(() => requestMounts([m({ container_path: 'relative' })], {}, true), /absolute/);
  const img = requestMounts([m({ readonly: true, image: { image: 'tools:1' }, image_sub_path: 'bin' })], { 'tools:1': '/vols/0' }, true)[0]!;
  assert.equal(img.source, '/vols/0/bin');
  assert.ok(img.options!.includes('ro'));
  assert.throws(
    () => requestMounts([m({ readonly: true, image: { image: 'tools:1' }, image_sub_path: '../../etc' })], { 'tools:1': '/vols/0' }, true),
    /escapes/,
  );
  assert.throws(() => requestMounts([m({ readonly: true, image: { image: 'absent:1' } })], {}, true), /pull it first/);
  assert.throws(() => requestMounts([m({ image: { image: 'tools:1' } })], { 'tools:1': '/vols/0' }, true), /must be read-only: readonly is false/);
  const merged = mergeMounts(defaultMounts(false, sandbox()), requestMounts([m({ container_path: '/etc/hosts', host_path: '/kubelet/hosts' })], {}, true));
  assert.equal(merged.filter((x) => x.destination === '/etc/hosts').length, 1);
  assert.equal(merged.find((x) => x.destination === '/etc/hosts')!.source, '/kubelet/hosts');
});

test('resources: cpu, memory, swap on v1 and v2, unified, hugepages', () => {
  const base = {
    cpu_period: 100000,
    cpu_quota: 50000,
    cpu_shares: 512,
    memory_limit_in_bytes: 256 << 20,
    oom_score_adj: 0,
    cpuset_cpus: '0',
    cpuset_mems: '',
    hugepage_limits: [],
    unified: {},
    memory_swap_limit_in_bytes: 0,
  } as any;
  assert.deepEqual(resourcesToOci(base, 'v1'), { cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' }, memory: { limit: 256 << 20 } });
  // NoSwap on v1: kubelet sends swap = memory (memory+swap counts no swap).
  assert.equal(resourcesToOci({ ...base, memory_swap_limit_in_bytes: 256 << 20 }, 'v1').memory!.swap, 256 << 20);
  // NoSwap and LimitedSwap on v2 arrive as unified memory.swap.max.
  assert.deepEqual(resourcesToOci({ ...base, unified: { 'memory.swap.max': '0' } }, 'v2').unified, { 'memory.swap.max': '0' });
  assert.deepEqual(resourcesToOci({ ...base, unified: { 'memory.swap.max': '104857600' } }, 'v2').unified, { 'memory.swap.max': '104857600' });
  assert.throws(() => resourcesToOci({ ...base, unified: { 'memory.swap.max': '0' } }, 'v1'), /cgroup v2/);
  assert.throws(() => resourcesToOci({ ...base, memory_swap_limit_in_bytes: 1 << 20 }, 'v1'), /cannot be below/);
  assert.deepEqual(resourcesToOci({ ...base, hugepage_limits: [{ page_size: '2MB', limit: 4194304 }] }, 'v2').hugepageLimits, [
    { pageSize: '2MB', limit: 4194304 },
  ]);
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(1024), 39);
  assert.equal(sharesToWeight(262144), 10000);
});

test('hugepage limits for every page size, as kubelet sends them, follow the node', () => {
  const kubelet = {
    hugepage_limits: [
      { page_size: '2MB', limit: 0 },
      { page_size: '1GB', limit: 0 },
    ],
  } as any;
  const both = { controller: true, pageSizes: ['2MB', '1GB'] };
  assert.deepEqual(resourcesToOci(kubelet, 'v2', both).hugepageLimits, [
    { pageSize: '2MB', limit: 0 },
    { pageSize: '1GB', limit: 0 },
  ]);
  // No hugetlb controller for runc (a hybrid host): dropped, or runc fails the container.
  assert.equal(resourcesToOci(kubelet, 'v1', { controller: false, pageSizes: ['2MB', '1GB'] }).hugepageLimits, undefined);
  // A size the kernel lacks: dropped at 0, refused when pages are asked for.
  assert.deepEqual(resourcesToOci(kubelet, 'v2', { controller: true, pageSizes: ['2MB'] }).hugepageLimits, [{ pageSize: '2MB', limit: 0 }]);
  assert.throws(
    () => resourcesToOci({ hugepage_limits: [{ page_size: '1GB', limit: 1 << 30 }] } as any, 'v2', { controller: true, pageSizes: ['2MB'] }),
    (e: any) => e instanceof SpecError && /1GB is not offered/.test(e.message),
  );
  assert.throws(() => resourcesToOci({ hugepage_limits: [{ page_size: '../2MB', limit: 0 }] } as any, 'v2', both), SpecError);
  const spec = buildSpec({ ...input({ linux: { resources: kubelet } }), host: { ...input().host, hugetlb: { controller: false, pageSizes: ['2MB', '1GB'] } } });
  assert.equal(spec.linux.resources.hugepageLimits, undefined);
});

test('oom_score_adj is clamped to the daemon floor; readonly rootfs and no_new_privs land', () => {
  const spec = buildSpec({
    ...input({ linux: { resources: { oom_score_adj: -998 }, security_context: { readonly_rootfs: true, no_new_privs: true } } }),
    host: { ...input().host, oomScoreAdjFloor: -500 },
  });
  assert.equal(spec.process.oomScoreAdj, -500);
  assert.equal(spec.root.readonly, true);
  assert.equal(spec.process.noNewPrivileges, true);
});

test('an update keeps the fields it leaves at zero and merges unified keys', () => {
  const current = { cpu_shares: 256, memory_limit_in_bytes: 64, cpuset_cpus: '0', unified: { 'memory.high': '50' } };
  const update = {
    cpu_shares: 0,
    cpu_quota: 50000,
    cpu_period: 100000,
    memory_limit_in_bytes: 128,
    cpuset_cpus: '',
    hugepage_limits: [],
    unified: { 'memory.swap.max': '0' },
  } as any;
  assert.deepEqual(mergeResources(current, update), {
    cpu_shares: 256,
    cpu_quota: 50000,
    cpu_period: 100000,
    memory_limit_in_bytes: 128,
    cpuset_cpus: '0',
    unified: { 'memory.high': '50', 'memory.swap.max': '0' },
  });
  assert.deepEqual(mergeResources(null, { memory_limit_in_bytes: 1 } as any), { memory_limit_in_bytes: 1 });
});

test('Localhost seccomp profiles: shape checked, errors never quote the file', async () => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { readLocalhostProfile } = await import('../../../src/oci/prepare.ts');
  const { seccompProfileProblem } = await import('../../../src/oci/seccomp.ts');
  const dir = await mkdtemp(join(tmpdir(), 'tscri-seccomp-unit-'));
  try {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }));
    assert.equal(((await readLocalhostProfile(good)) as any).defaultAction, 'SCMP_ACT_ERRNO');
    for (const body of [
      'secret-password\n',
      '{"secret-password": 1',
      JSON.stringify(['secret-password']),
      JSON.stringify({ defaultAction: 'secret-password', syscalls: [{ names: 'secret-password', action: 'x' }] }),
    ]) {
      const path = join(dir, 'bad');
      await writeFile(path, body);
      await assert.rejects(
        readLocalhostProfile(path),
        (e: any) => e.name === 'SpecError' && /seccomp profile/.test(e.message) && !/secret-password/.test(e.message),
      );
    }
    await assert.rejects(readLocalhostProfile('relative.json'), /absolute path/);
    await assert.rejects(readLocalhostProfile(dir), /not a regular file/);
    await assert.rejects(readLocalhostProfile(join(dir, 'none')), /no such file/);
    assert.equal(seccompProfileProblem({ defaultAction: 'SCMP_ACT_ALLOW', architectures: { amd64: ['SCMP_ARCH_X86_64'] } }), undefined);
    assert.match(seccompProfileProblem({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'A', args: 'x' }] })!, /args/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
