// The rules of the OCI spec, one small function each: every option reads the
// input and fills in its part of the spec. buildSpec applies them in order.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { ImageSettings as ImageConfig, SpecSandbox } from './request.ts';
import type { Namespace } from './types.ts';
import type { BuiltSpec, SpecInput, SpecOpt } from './spec-input.ts';
import { clampOom } from './oom.ts';
import { SpecError } from './errors.ts';
import { resolveUser, type ResolvedUser } from './user.ts';
import { capabilities, seccompChoice, apparmorProfile, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './security.ts';
import { resourcesToOci } from './resources.ts';
import { defaultMounts, mergeMounts, requestMounts, rootfsPropagation } from './mounts.ts';
import { ociSeccomp, type SeccompProfile } from './seccomp.ts';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** argv as kubelet expects: command replaces Entrypoint (and drops Cmd); args replace Cmd. */
export function processArgs(command: string[], args: string[], image: ImageConfig): string[] {
  const argv = command.length ? [...command, ...args] : [...(image.Entrypoint ?? []), ...(args.length ? args : (image.Cmd ?? []))];
  if (!argv.length) throw new SpecError('no command: the request and the image both leave it empty');
  return argv;
}

/** Image env first, the request's values override by name; PATH is always set. */
export function processEnv(imageEnv: string[] | null = [], envs: Array<{ key: string; value: string | Uint8Array }> = []): string[] {
  const values = new Map<string, string>();
  // Docker writes "Env": null for an image without environment.
  for (const e of imageEnv ?? []) {
    const eq = e.indexOf('=');
    values.set(eq < 0 ? e : e.slice(0, eq), eq < 0 ? '' : e.slice(eq + 1));
  }
  for (const { key, value } of envs) {
    if (!key) throw new SpecError('an environment variable has an empty name');
    values.set(key, typeof value === 'string' ? value : Buffer.from(value).toString('utf8'));
  }
  const env = [...values].map(([k, v]) => `${k}=${v}`);
  return values.has('PATH') ? env : [DEFAULT_PATH, ...env];
}

/**
 * The namespaces a container joins or gets. targetPidNamespace is the pid
 * namespace file of the container named by target_id (TARGET mode, which
 * kubelet uses for ephemeral debug containers); the caller resolves it.
 */
export function namespaces(
  sandbox: SpecSandbox,
  options: { network?: string; pid?: string; ipc?: string } | null | undefined,
  cgroupVersion: 'v1' | 'v2',
  targetPidNamespace?: string,
): Namespace[] {
  const ns: Namespace[] = [{ type: 'mount' }];
  const join = (type: Namespace['type'], path: string | undefined) => (path ? ns.push({ type, path }) : undefined);
  // Network, IPC and UTS are the pod's whatever the container asks, as with
  // containerd: a container of a pod with its own network never lands in the
  // node's, and one of a host-network pod shares the node's.
  join('network', sandbox.namespaces.network);
  join('ipc', sandbox.namespaces.ipc);
  join('uts', sandbox.namespaces.uts);
  // The node's pid namespace only in a pod that has it; elsewhere NODE follows the pod.
  // An absent namespace_options is the proto's zero value: POD for every namespace.
  const podPid = sandbox.config.linux?.security_context?.namespace_options?.pid ?? 'POD';
  const asked = options?.pid ?? 'POD';
  const pid = asked === 'NODE' && podPid !== 'NODE' ? (sandbox.namespaces.pid ? 'POD' : 'CONTAINER') : asked;
  switch (pid) {
    case 'NODE':
      break;
    case 'TARGET':
      if (!targetPidNamespace) throw new SpecError('the TARGET pid namespace mode needs the running target container named by target_id');
      ns.push({ type: 'pid', path: targetPidNamespace });
      break;
    case 'POD':
      if (sandbox.namespaces.pid) ns.push({ type: 'pid', path: sandbox.namespaces.pid });
      else ns.push({ type: 'pid' });
      break;
    default:
      ns.push({ type: 'pid' });
  }
  if (cgroupVersion === 'v2') ns.push({ type: 'cgroup' });
  return ns;
}

/** HOSTNAME, the pod's hostname, as containerd and CRI-O set it; the image and the request may override it. */
function podHostnameEnv(sandbox: SpecSandbox): string[] {
  const hostname = sandbox.hostname || sandbox.config.hostname;
  return hostname ? [`HOSTNAME=${hostname}`] : [];
}

function userOf(config: ContainerConfig__Output, image: ImageConfig, etc: SpecInput['etcFiles']): ResolvedUser {
  const sc = config.linux?.security_context;
  // A group alone would pair with whatever user the image names: refused, as containerd and CRI-O do.
  if (sc?.run_as_group && !sc.run_as_user && !sc.run_as_username) throw new SpecError('run_as_group is set without run_as_user or run_as_username');
  return resolveUser(
    {
      runAsUser: sc?.run_as_user ? Number(sc.run_as_user.value) : undefined,
      runAsGroup: sc?.run_as_group ? Number(sc.run_as_group.value) : undefined,
      runAsUsername: sc?.run_as_username || undefined,
      imageUser: image.User ?? undefined,
      supplementalGroups: (sc?.supplemental_groups ?? []).map(Number),
      strict: sc?.supplemental_groups_policy === 'Strict',
    },
    etc,
  );
}

function securityContext(input: SpecInput) {
  return input.config.linux?.security_context;
}

function isPrivileged(input: SpecInput): boolean {
  return Boolean(securityContext(input)?.privileged);
}

/** A spec with every part buildSpec always fills in, empty. */
export function emptySpec(): BuiltSpec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [],
      env: [],
      cwd: '/',
      capabilities: { bounding: [], effective: [], permitted: [], ambient: [] },
      noNewPrivileges: false,
      oomScoreAdj: 0,
    },
    root: { path: '', readonly: false },
    mounts: [],
    annotations: {},
    linux: { cgroupsPath: '', namespaces: [], resources: { devices: [] }, devices: [], maskedPaths: [], readonlyPaths: [] },
  };
}

/** A privileged container only in a privileged pod. */
export const requirePrivilegedPod: SpecOpt = (_spec, input) => {
  if (isPrivileged(input) && !input.sandbox.config.linux?.security_context?.privileged) {
    throw new SpecError('a privileged container needs a privileged pod sandbox');
  }
};

/** uid, gid and groups from run_as_*, the image's User and the container's /etc/passwd and /etc/group. */
export const withUser: SpecOpt = (spec, input) => {
  const user = userOf(input.config, input.image.config, input.etcFiles);
  spec.process.user = { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids };
};

/** The capability sets: defaults, adds and drops (all for privileged); ambient ones only within them. */
export const withCapabilities: SpecOpt = (spec, input) => {
  const sc = securityContext(input);
  const caps = capabilities(
    sc?.capabilities?.add_capabilities ?? [],
    sc?.capabilities?.drop_capabilities ?? [],
    isPrivileged(input),
    input.host.boundingCapabilities,
  );
  const ambient = (sc?.capabilities?.add_ambient_capabilities ?? []).map((c) =>
    c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`,
  );
  spec.process.capabilities = { bounding: caps, effective: caps, permitted: caps, ambient: ambient.filter((c) => caps.includes(c)) };
};

/** cgroup resources (cpu, memory, swap, pids, hugepages, unified) for the node's cgroup version; device rules stay. */
export const withResources: SpecOpt = (spec, input) => {
  const resources = resourcesToOci(input.config.linux?.resources, input.host.cgroupVersion, input.host.hugetlb);
  spec.linux.resources = { ...resources, devices: spec.linux.resources.devices };
};

/** A terminal when the request asks for a tty. */
export const withTerminal: SpecOpt = (spec, input) => {
  spec.process.terminal = Boolean(input.config.tty);
};

/** argv from the request's command and args and the image's Entrypoint and Cmd. */
export const withArgs: SpecOpt = (spec, input) => {
  spec.process.args = processArgs(input.config.command ?? [], input.config.args ?? [], input.image.config);
};

/** The environment: the pod's HOSTNAME, the image's Env, then the request's envs. */
export const withEnv: SpecOpt = (spec, input) => {
  spec.process.env = processEnv([...podHostnameEnv(input.sandbox), ...(input.image.config.Env ?? [])], input.config.envs);
};

/** The working directory: the request's, the image's, or /. */
export const withCwd: SpecOpt = (spec, input) => {
  spec.process.cwd = input.config.working_dir || input.image.config.WorkingDir || '/';
};

/** no_new_privs, never for a privileged container. */
export const withNoNewPrivileges: SpecOpt = (spec, input) => {
  spec.process.noNewPrivileges = Boolean(securityContext(input)?.no_new_privs) && !isPrivileged(input);
};

/** oom_score_adj, clamped to the range and the daemon's floor. */
export const withOomScoreAdj: SpecOpt = (spec, input) => {
  spec.process.oomScoreAdj = clampOom(input.config.linux?.resources?.oom_score_adj ?? 0, input.host.oomScoreAdjFloor, input.host.restrictOomScoreAdj);
};

/** The rootfs, read-only when asked. */
export const withRoot: SpecOpt = (spec, input) => {
  spec.root = { path: input.rootfs, readonly: Boolean(securityContext(input)?.readonly_rootfs) };
};

/** The default mounts and the pod's files, overridden by the request's mounts at the same destination. */
export const withMounts: SpecOpt = (spec, input) => {
  spec.mounts = mergeMounts(
    defaultMounts(isPrivileged(input), input.sandbox),
    requestMounts(input.config.mounts ?? [], input.imageMounts ?? {}, input.host.rroSupported),
  );
};

/** The request's annotations and the io.kubernetes.cri.* ones naming the container, its pod and its image. */
export const withAnnotations: SpecOpt = (spec, input) => {
  const { config, sandbox } = input;
  spec.annotations = {
    ...config.annotations,
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.container-name': config.metadata?.name ?? '',
    'io.kubernetes.cri.sandbox-id': sandbox.id,
    'io.kubernetes.cri.sandbox-name': sandbox.config.metadata?.name ?? '',
    'io.kubernetes.cri.sandbox-namespace': sandbox.config.metadata?.namespace ?? '',
    'io.kubernetes.cri.sandbox-uid': sandbox.config.metadata?.uid ?? '',
    'io.kubernetes.cri.image-name': input.image.name,
  };
};

/** The container's cgroup. */
export const withCgroupsPath: SpecOpt = (spec, input) => {
  spec.linux.cgroupsPath = input.cgroupsPath;
};

/** A shared or slave root when a mount propagates. */
export const withRootfsPropagation: SpecOpt = (spec, input) => {
  const propagation = rootfsPropagation(input.config.mounts ?? []);
  if (propagation) spec.linux.rootfsPropagation = propagation;
};

/** The pod's network, IPC and UTS namespaces and the pid namespace the request asks for. */
export const withNamespaces: SpecOpt = (spec, input) => {
  spec.linux.namespaces = namespaces(input.sandbox, securityContext(input)?.namespace_options, input.host.cgroupVersion, input.targetPidNamespace);
};

/** Device nodes and their cgroup rules: the requested ones, or every host device for a privileged container. */
export const withDevices: SpecOpt = (spec, input) => {
  const privileged = isPrivileged(input);
  const requested = input.devices ?? [];
  const all = privileged ? input.host.hostDevices.map((d) => ({ ...d, containerPath: d.path, permissions: 'rwm' })) : requested;
  spec.linux.resources.devices = privileged
    ? [{ allow: true, access: 'rwm' }]
    : [
        { allow: false, access: 'rwm' },
        ...requested.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions || 'rwm' })),
      ];
  spec.linux.devices = all.map((d) => ({ path: d.containerPath, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid }));
};

/** Masked paths: the request's or the defaults; none for a privileged container. */
export const withMaskedPaths: SpecOpt = (spec, input) => {
  const sc = securityContext(input);
  spec.linux.maskedPaths = isPrivileged(input) ? [] : sc?.masked_paths?.length ? sc.masked_paths : DEFAULT_MASKED_PATHS;
};

/** Read-only paths: the request's or the defaults; none for a privileged container. */
export const withReadonlyPaths: SpecOpt = (spec, input) => {
  const sc = securityContext(input);
  spec.linux.readonlyPaths = isPrivileged(input) ? [] : sc?.readonly_paths?.length ? sc.readonly_paths : DEFAULT_READONLY_PATHS;
};

/** The seccomp choice names a known kind (checked early, so its error comes before those of the process). */
export const checkSeccompChoice: SpecOpt = (_spec, input) => {
  const sc = securityContext(input);
  seccompChoice(sc?.seccomp, sc?.seccomp_profile_path);
};

/** The seccomp filter: the node's default profile or a Localhost one, with entries for the capabilities the process has. */
export const withSeccomp: SpecOpt = (spec, input) => {
  const sc = securityContext(input);
  const seccomp = seccompChoice(sc?.seccomp, sc?.seccomp_profile_path);
  if (isPrivileged(input)) return;
  const caps = spec.process.capabilities.bounding;
  if (seccomp.kind === 'runtime-default' && input.host.seccompDefaultProfile)
    spec.linux.seccomp = ociSeccomp(input.host.seccompDefaultProfile as SeccompProfile, caps);
  if (seccomp.kind === 'localhost') {
    if (!input.seccompLocalhost) throw new SpecError(`seccomp profile ${seccomp.ref} could not be read`);
    const local = input.seccompLocalhost as SeccompProfile;
    if (typeof local?.defaultAction !== 'string') throw new SpecError(`seccomp profile ${seccomp.ref} has no defaultAction; it is not a seccomp profile`);
    spec.linux.seccomp = ociSeccomp(local, caps);
  }
};

/** The AppArmor profile; none for a privileged container. */
export const withApparmor: SpecOpt = (spec, input) => {
  if (isPrivileged(input)) return;
  const sc = securityContext(input);
  const apparmor = apparmorProfile(sc?.apparmor, sc?.apparmor_profile ?? '', input.host.apparmorEnabled, input.host.apparmorDefaultProfile);
  if (apparmor) spec.process.apparmorProfile = apparmor;
};

/** The options of a container's spec, in the order buildSpec applies them (the first failing rule is the error reported). */
export const CONTAINER_SPEC_OPTS: readonly SpecOpt[] = [
  requirePrivilegedPod,
  withUser,
  withCapabilities,
  withResources,
  checkSeccompChoice,
  withTerminal,
  withArgs,
  withEnv,
  withCwd,
  withNoNewPrivileges,
  withOomScoreAdj,
  withRoot,
  withMounts,
  withAnnotations,
  withCgroupsPath,
  withRootfsPropagation,
  withNamespaces,
  withDevices,
  withMaskedPaths,
  withReadonlyPaths,
  withSeccomp,
  withApparmor,
];
