// Each rule of the OCI spec on its own: one option applied to an empty spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as opts from '../../../src/oci/spec-opts.ts';
import { buildSpec, type SpecInput, type SpecOpt } from '../../../src/oci/spec.ts';
import { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../../src/oci/security.ts';
import { SpecError } from '../../../src/oci/errors.ts';

const passwd = 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n';
const group = 'root:x:0:\nusers:x:100:user\n';

function input(config: Record<string, any> = {}, extra: Partial<SpecInput> = {}, podPrivileged = false): SpecInput {
  return {
    containerId: 'c1',
    config: { metadata: { name: 'c' }, command: [], args: [], envs: [], mounts: [], devices: [], annotations: {}, ...config } as any,
    sandbox: {
      id: 'pod1',
      hostname: 'web-0',
      config: { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, linux: { security_context: { privileged: podPrivileged } } },
      namespaces: { network: '/run/ns/net', ipc: '/run/ns/ipc', uts: '/run/ns/uts' },
      files: { hostname: '/pod/hostname', hosts: '/pod/hosts', resolvConf: '/pod/resolv.conf', shm: '/pod/shm' },
    } as any,
    image: { config: { Cmd: ['sh'], Env: ['B=2'], WorkingDir: '/w', User: 'user' }, name: 'busybox' },
    rootfs: '/rootfs',
    cgroupsPath: '/tscri/pod-1/ctr-c1',
    etcFiles: { passwd, group },
    host: {
      cgroupVersion: 'v2',
      apparmorEnabled: true,
      apparmorDefaultProfile: 'tscri-default',
      rroSupported: true,
      oomScoreAdjFloor: -10,
      restrictOomScoreAdj: true,
      hostDevices: [{ path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }],
      seccompDefaultProfile: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] },
    },
    ...extra,
  };
}

const privileged = (config: Record<string, any> = {}) => input({ ...config, linux: { security_context: { privileged: true } } }, {}, true);

function apply(opt: SpecOpt, inp: SpecInput) {
  const spec = opts.emptySpec();
  opt(spec, inp);
  return spec;
}

test('buildSpec applies the options in order on an empty spec, and takes another list', () => {
  const seen: string[] = [];
  const spec = buildSpec(input(), [(s) => void seen.push(s.ociVersion), (s) => void (s.process.cwd = '/x')]);
  assert.deepEqual(seen, ['1.0.2']);
  assert.equal(spec.process.cwd, '/x');
  assert.deepEqual(
    buildSpec(input()),
    opts.CONTAINER_SPEC_OPTS.reduce((s, o) => (o(s, input()), s), opts.emptySpec()),
  );
});

test('requirePrivilegedPod: a privileged container in an unprivileged pod is refused', () => {
  assert.throws(() => apply(opts.requirePrivilegedPod, input({ linux: { security_context: { privileged: true } } })), SpecError);
  apply(opts.requirePrivilegedPod, privileged());
  apply(opts.requirePrivilegedPod, input());
});

test('withUser: the image user through /etc/passwd, or run_as_user; a group alone is refused', () => {
  assert.deepEqual(apply(opts.withUser, input()).process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 100] });
  const asRoot = apply(opts.withUser, input({ linux: { security_context: { run_as_user: { value: 0 } } } }));
  assert.equal(asRoot.process.user.uid, 0);
  assert.throws(() => apply(opts.withUser, input({ linux: { security_context: { run_as_group: { value: 5 } } } })), SpecError);
});

test('withCapabilities: defaults, adds, drops; ambient only within the set; all for privileged', () => {
  const caps = apply(
    opts.withCapabilities,
    input({
      linux: {
        security_context: { capabilities: { add_capabilities: ['SYS_ADMIN'], drop_capabilities: ['KILL'], add_ambient_capabilities: ['sys_admin', 'kill'] } },
      },
    }),
  ).process.capabilities;
  assert.ok(caps.bounding.includes('CAP_SYS_ADMIN') && !caps.bounding.includes('CAP_KILL'));
  assert.deepEqual(caps.effective, caps.bounding);
  assert.deepEqual(caps.ambient, ['CAP_SYS_ADMIN']);
  assert.deepEqual(apply(opts.withCapabilities, input()).process.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.ok(apply(opts.withCapabilities, privileged()).process.capabilities.bounding.includes('CAP_SYS_MODULE'));
  assert.throws(() => apply(opts.withCapabilities, input({ linux: { security_context: { capabilities: { add_capabilities: ['NOPE'] } } } })), SpecError);
});

test('withResources: the request limits for the cgroup version, device rules kept', () => {
  const spec = opts.emptySpec();
  spec.linux.resources.devices = [{ allow: false, access: 'rwm' }];
  opts.withResources(spec, input({ linux: { resources: { memory_limit_in_bytes: 1 << 28, cpu_shares: 1024 } } }));
  assert.equal(spec.linux.resources.memory?.limit, 1 << 28);
  assert.ok(spec.linux.resources.cpu);
  assert.deepEqual(spec.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
  assert.throws(
    () =>
      apply(opts.withResources, { ...input({ linux: { resources: { unified: { 'memory.high': '1' } } } }), host: { ...input().host, cgroupVersion: 'v1' } }),
    SpecError,
  );
});

test('checkSeccompChoice: an unknown seccomp_profile_path is refused before anything else is filled', () => {
  assert.throws(() => apply(opts.checkSeccompChoice, input({ linux: { security_context: { seccomp_profile_path: 'bogus' } } })), SpecError);
  assert.deepEqual(apply(opts.checkSeccompChoice, input()), opts.emptySpec());
});

test('withTerminal: tty', () => {
  assert.equal(apply(opts.withTerminal, input({ tty: true })).process.terminal, true);
  assert.equal(apply(opts.withTerminal, input()).process.terminal, false);
});

test('withArgs: the image Cmd, or the request command; empty both is refused', () => {
  assert.deepEqual(apply(opts.withArgs, input()).process.args, ['sh']);
  assert.deepEqual(apply(opts.withArgs, input({ command: ['/bin/true'], args: ['x'] })).process.args, ['/bin/true', 'x']);
  assert.throws(() => apply(opts.withArgs, { ...input(), image: { config: {}, name: 'b' } }), SpecError);
});

test('withEnv: PATH, the pod HOSTNAME, the image Env, then the request', () => {
  const env = apply(opts.withEnv, input({ envs: [{ key: 'B', value: '3' }] })).process.env;
  assert.match(env[0]!, /^PATH=/);
  assert.deepEqual(env.slice(1), ['HOSTNAME=web-0', 'B=3']);
  assert.throws(() => apply(opts.withEnv, input({ envs: [{ key: '', value: 'x' }] })), SpecError);
});

test('withCwd: the request, the image, or /', () => {
  assert.equal(apply(opts.withCwd, input({ working_dir: '/req' })).process.cwd, '/req');
  assert.equal(apply(opts.withCwd, input()).process.cwd, '/w');
  assert.equal(apply(opts.withCwd, { ...input(), image: { config: {}, name: 'b' } }).process.cwd, '/');
});

test('withNoNewPrivileges: as asked, never for privileged', () => {
  assert.equal(apply(opts.withNoNewPrivileges, input({ linux: { security_context: { no_new_privs: true } } })).process.noNewPrivileges, true);
  assert.equal(
    apply(opts.withNoNewPrivileges, input({ linux: { security_context: { no_new_privs: true, privileged: true } } }, {}, true)).process.noNewPrivileges,
    false,
  );
});

test('withOomScoreAdj: clamped to the range and the floor', () => {
  assert.equal(apply(opts.withOomScoreAdj, input({ linux: { resources: { oom_score_adj: 500 } } })).process.oomScoreAdj, 500);
  assert.equal(apply(opts.withOomScoreAdj, input({ linux: { resources: { oom_score_adj: -999 } } })).process.oomScoreAdj, -10);
  assert.equal(apply(opts.withOomScoreAdj, input({ linux: { resources: { oom_score_adj: 5000 } } })).process.oomScoreAdj, 1000);
});

test('withRoot: the rootfs, read-only when asked', () => {
  assert.deepEqual(apply(opts.withRoot, input()).root, { path: '/rootfs', readonly: false });
  assert.deepEqual(apply(opts.withRoot, input({ linux: { security_context: { readonly_rootfs: true } } })).root, { path: '/rootfs', readonly: true });
});

test('withMounts: defaults and pod files, a request mount replaces one at its destination; relative paths refused', () => {
  const mounts = apply(opts.withMounts, input({ mounts: [{ container_path: '/etc/hosts', host_path: '/mine' }] })).mounts;
  assert.ok(mounts.some((m) => m.destination === '/proc'));
  assert.deepEqual(
    mounts.filter((m) => m.destination === '/etc/hosts').map((m) => m.source),
    ['/mine'],
  );
  assert.ok(mounts.some((m) => m.destination === '/etc/resolv.conf' && m.source === '/pod/resolv.conf'));
  assert.throws(() => apply(opts.withMounts, input({ mounts: [{ container_path: 'rel', host_path: '/x' }] })), SpecError);
});

test('withAnnotations: the request annotations and the io.kubernetes.cri ones', () => {
  const a = apply(opts.withAnnotations, input({ annotations: { mine: '1', 'io.kubernetes.cri.sandbox-id': 'forged' } })).annotations;
  assert.equal(a.mine, '1');
  assert.equal(a['io.kubernetes.cri.sandbox-id'], 'pod1');
  assert.equal(a['io.kubernetes.cri.container-name'], 'c');
  assert.equal(a['io.kubernetes.cri.sandbox-namespace'], 'ns');
  assert.equal(a['io.kubernetes.cri.image-name'], 'busybox');
});

test('withCgroupsPath and withRootfsPropagation', () => {
  assert.equal(apply(opts.withCgroupsPath, input()).linux.cgroupsPath, '/tscri/pod-1/ctr-c1');
  assert.equal(apply(opts.withRootfsPropagation, input()).linux.rootfsPropagation, undefined);
  const bidi = input({ mounts: [{ container_path: '/d', host_path: '/tmp', propagation: 'PROPAGATION_BIDIRECTIONAL' }] });
  assert.equal(apply(opts.withRootfsPropagation, bidi).linux.rootfsPropagation, 'rshared');
});

test('withNamespaces: the pod network, IPC and UTS; a cgroup namespace on v2; TARGET needs its target', () => {
  const ns = apply(opts.withNamespaces, input()).linux.namespaces;
  assert.deepEqual(
    ns.map((n) => n.type),
    ['mount', 'network', 'ipc', 'uts', 'pid', 'cgroup'],
  );
  const target = input({ linux: { security_context: { namespace_options: { pid: 'TARGET' } } } });
  assert.throws(() => apply(opts.withNamespaces, target), SpecError);
  assert.deepEqual(
    apply(opts.withNamespaces, { ...target, targetPidNamespace: '/proc/9/ns/pid' }).linux.namespaces.find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/9/ns/pid' },
  );
});

test('withDevices: the requested devices and a deny-all rule; every host device for privileged', () => {
  const dev = { path: '/dev/zero', type: 'c' as const, major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0, containerPath: '/dev/z', permissions: 'r' };
  const spec = apply(opts.withDevices, input({}, { devices: [dev] }));
  assert.deepEqual(spec.linux.resources.devices, [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 5, access: 'r' },
  ]);
  assert.deepEqual(
    spec.linux.devices.map((d) => d.path),
    ['/dev/z'],
  );
  const priv = apply(opts.withDevices, privileged());
  assert.deepEqual(priv.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  assert.deepEqual(
    priv.linux.devices.map((d) => d.path),
    ['/dev/null'],
  );
});

test('withMaskedPaths and withReadonlyPaths: the request or the defaults, none for privileged', () => {
  assert.deepEqual(apply(opts.withMaskedPaths, input()).linux.maskedPaths, DEFAULT_MASKED_PATHS);
  assert.deepEqual(apply(opts.withMaskedPaths, input({ linux: { security_context: { masked_paths: ['/m'] } } })).linux.maskedPaths, ['/m']);
  assert.deepEqual(apply(opts.withMaskedPaths, privileged()).linux.maskedPaths, []);
  assert.deepEqual(apply(opts.withReadonlyPaths, input()).linux.readonlyPaths, DEFAULT_READONLY_PATHS);
  assert.deepEqual(apply(opts.withReadonlyPaths, input({ linux: { security_context: { readonly_paths: ['/r'] } } })).linux.readonlyPaths, ['/r']);
  assert.deepEqual(apply(opts.withReadonlyPaths, privileged()).linux.readonlyPaths, []);
});

test('withSeccomp: the node default for RuntimeDefault, a Localhost profile as read, none when unconfined or privileged', () => {
  const rd = input({ linux: { security_context: { seccomp: { profile_type: 'RuntimeDefault' } } } });
  assert.equal(apply(opts.withSeccomp, rd).linux.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(apply(opts.withSeccomp, input()).linux.seccomp, undefined);
  assert.equal(
    apply(opts.withSeccomp, privileged({ linux: { security_context: { privileged: true, seccomp: { profile_type: 'RuntimeDefault' } } } })).linux.seccomp,
    undefined,
  );
  const local = input({ linux: { security_context: { seccomp: { profile_type: 'Localhost', localhost_ref: '/p.json' } } } });
  assert.throws(() => apply(opts.withSeccomp, local), SpecError);
  assert.throws(() => apply(opts.withSeccomp, { ...local, seccompLocalhost: { syscalls: [] } }), SpecError);
  assert.equal(apply(opts.withSeccomp, { ...local, seccompLocalhost: { defaultAction: 'SCMP_ACT_LOG' } }).linux.seccomp?.defaultAction, 'SCMP_ACT_LOG');
});

test('withApparmor: the default profile for RuntimeDefault, none for privileged', () => {
  const rd = input({ linux: { security_context: { apparmor: { profile_type: 'RuntimeDefault' } } } });
  assert.equal(apply(opts.withApparmor, rd).process.apparmorProfile, 'tscri-default');
  assert.equal(apply(opts.withApparmor, input()).process.apparmorProfile, undefined);
  assert.equal(
    apply(opts.withApparmor, privileged({ linux: { security_context: { privileged: true, apparmor: { profile_type: 'RuntimeDefault' } } } })).process
      .apparmorProfile,
    undefined,
  );
});

test('the first failing rule is the error reported', () => {
  const twice = input({ command: [], linux: { security_context: { seccomp_profile_path: 'bogus' } } }, { image: { config: {}, name: 'b' } });
  assert.throws(() => buildSpec(twice), /seccomp_profile_path/);
});
