// The OCI runtime spec (config.json) of a container, built from the CRI
// request, the pod sandbox and the image config by small pure functions.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { ImageSettings as ImageConfig, SpecSandbox } from './request.ts';
import { clampOom } from './oom.ts';
import { SpecError } from './errors.ts';
import type { Capabilities, Device, DeviceRule, Linux, Mount, Namespace, Process, Resources, Spec, User } from './types.ts';
import { resolveUser, type ResolvedUser } from './user.ts';
import { capabilities, seccompChoice, apparmorProfile, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './security.ts';
import { resourcesToOci, type HugetlbSupport } from './resources.ts';
import { defaultMounts, mergeMounts, requestMounts, rootfsPropagation } from './mounts.ts';
import { ociSeccomp, type SeccompProfile } from './seccomp.ts';

export { SpecError };

export type { ImageSettings as ImageConfig } from './request.ts';

export interface HostDevice {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

export interface HostFacts {
  cgroupVersion: 'v1' | 'v2';
  apparmorEnabled: boolean;
  apparmorDefaultProfile: string;
  rroSupported: boolean;
  /** The lowest oom_score_adj the daemon may give, and whether to clamp to it. */
  oomScoreAdjFloor: number;
  restrictOomScoreAdj: boolean;
  seccompDefaultProfile?: object;
  /** Host device nodes, for privileged containers. */
  hostDevices: HostDevice[];
  /** The daemon's capability bounding set: what "all capabilities" can mean here. */
  boundingCapabilities?: string[];
  /** The hugetlb controller and page sizes; absent means hugepage limits pass through. */
  hugetlb?: HugetlbSupport;
}

export interface SpecInput {
  containerId: string;
  config: ContainerConfig__Output;
  sandbox: SpecSandbox;
  image: { config: ImageConfig; name: string };
  rootfs: string;
  cgroupsPath: string;
  etcFiles: { passwd?: string; group?: string };
  host: HostFacts;
  imageMounts?: Record<string, string>;
  /** Parsed Localhost seccomp profile, read by the caller. */
  seccompLocalhost?: object;
  /** Devices the request names, resolved on the host. */
  devices?: Array<HostDevice & { containerPath: string; permissions: string }>;
  /** The pid namespace of the target container, for the TARGET pid mode. */
  targetPidNamespace?: string;
}

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

/** A spec as buildSpec makes it: every part it always fills in is present. */
export interface BuiltSpec extends Spec {
  process: Process & { env: string[]; capabilities: Required<Pick<Capabilities, 'bounding' | 'effective' | 'permitted' | 'ambient'>> };
  root: { path: string; readonly: boolean };
  mounts: Mount[];
  annotations: Record<string, string>;
  linux: Linux & {
    cgroupsPath: string;
    namespaces: Namespace[];
    resources: Resources & { devices: DeviceRule[] };
    devices: Device[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

export function buildSpec(input: SpecInput): BuiltSpec {
  const { config, sandbox, host } = input;
  const sc = config.linux?.security_context;
  const privileged = Boolean(sc?.privileged);
  if (privileged && !sandbox.config.linux?.security_context?.privileged) {
    throw new SpecError('a privileged container needs a privileged pod sandbox');
  }
  const user = userOf(config, input.image.config, input.etcFiles);
  const caps = capabilities(sc?.capabilities?.add_capabilities ?? [], sc?.capabilities?.drop_capabilities ?? [], privileged, host.boundingCapabilities);
  const ambient = (sc?.capabilities?.add_ambient_capabilities ?? []).map((c) => (c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`));
  const resources = resourcesToOci(config.linux?.resources, host.cgroupVersion, host.hugetlb);
  const requestedDevices = input.devices ?? [];
  const allDevices = privileged ? host.hostDevices.map((d) => ({ ...d, containerPath: d.path, permissions: 'rwm' })) : requestedDevices;
  const seccomp = seccompChoice(sc?.seccomp, sc?.seccomp_profile_path);
  const spec: BuiltSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: Boolean(config.tty),
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args: processArgs(config.command ?? [], config.args ?? [], input.image.config),
      env: processEnv([...podHostnameEnv(sandbox), ...(input.image.config.Env ?? [])], config.envs),
      cwd: config.working_dir || input.image.config.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: ambient.filter((c) => caps.includes(c)) },
      noNewPrivileges: Boolean(sc?.no_new_privs) && !privileged,
      oomScoreAdj: clampOom(config.linux?.resources?.oom_score_adj ?? 0, host.oomScoreAdjFloor, host.restrictOomScoreAdj),
    },
    root: { path: input.rootfs, readonly: Boolean(sc?.readonly_rootfs) },
    mounts: mergeMounts(defaultMounts(privileged, sandbox), requestMounts(config.mounts ?? [], input.imageMounts ?? {}, host.rroSupported)),
    annotations: {
      ...config.annotations,
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': config.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-id': sandbox.id,
      'io.kubernetes.cri.sandbox-name': sandbox.config.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-namespace': sandbox.config.metadata?.namespace ?? '',
      'io.kubernetes.cri.sandbox-uid': sandbox.config.metadata?.uid ?? '',
      'io.kubernetes.cri.image-name': input.image.name,
    },
    linux: {
      cgroupsPath: input.cgroupsPath,
      ...(rootfsPropagation(config.mounts ?? []) ? { rootfsPropagation: rootfsPropagation(config.mounts ?? []) } : {}),
      namespaces: namespaces(sandbox, sc?.namespace_options, host.cgroupVersion, input.targetPidNamespace),
      resources: {
        ...resources,
        devices: privileged
          ? [{ allow: true, access: 'rwm' }]
          : [{ allow: false, access: 'rwm' }, ...requestedDevices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions || 'rwm' }))],
      },
      devices: allDevices.map((d) => ({ path: d.containerPath, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid })),
      maskedPaths: privileged ? [] : sc?.masked_paths?.length ? sc.masked_paths : DEFAULT_MASKED_PATHS,
      readonlyPaths: privileged ? [] : sc?.readonly_paths?.length ? sc.readonly_paths : DEFAULT_READONLY_PATHS,
    },
  };
  if (!privileged && seccomp.kind === 'runtime-default' && host.seccompDefaultProfile) spec.linux.seccomp = ociSeccomp(host.seccompDefaultProfile as SeccompProfile, caps);
  if (!privileged && seccomp.kind === 'localhost') {
    if (!input.seccompLocalhost) throw new SpecError(`seccomp profile ${seccomp.ref} could not be read`);
    const local = input.seccompLocalhost as SeccompProfile;
    if (typeof local?.defaultAction !== 'string') throw new SpecError(`seccomp profile ${seccomp.ref} has no defaultAction; it is not a seccomp profile`);
    spec.linux.seccomp = ociSeccomp(local, caps);
  }
  const apparmor = privileged ? undefined : apparmorProfile(sc?.apparmor, sc?.apparmor_profile ?? '', host.apparmorEnabled, host.apparmorDefaultProfile);
  if (apparmor) spec.process.apparmorProfile = apparmor;
  return spec;
}

/** The effective user for ContainerStatus.user. */
export function specUser(spec: Spec): { uid: number; gid: number; supplemental_groups: number[] } {
  const u: Partial<User> = spec.process?.user ?? {};
  return { uid: u.uid ?? 0, gid: u.gid ?? 0, supplemental_groups: u.additionalGids ?? [u.gid ?? 0] };
}
