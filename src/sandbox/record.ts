// The persisted record of a pod sandbox: what RunPodSandbox made, and what
// containers need to join it (namespace paths, cgroup parent, pod files).
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { CniAttachment } from '../network/cni.ts';

export type SandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface SandboxNamespaces {
  /** Pinned namespace files (bind mounts); absent means the host's namespace is used. */
  network?: string;
  ipc?: string;
  uts?: string;
  /** /proc/<infraPid>/ns/pid when the pod shares one pid namespace. */
  pid?: string;
}

export interface SandboxRecord {
  id: string;
  /** The request's config, as received. */
  config: PodSandboxConfig__Output;
  state: SandboxState;
  /** Nanoseconds since the epoch. */
  createdAt: number;
  runtimeHandler: string;
  namespaces: SandboxNamespaces;
  /** The infra process (catatonit) holding a shared pid namespace, if any. */
  infraPid?: number;
  /** The pod's cgroup: a cgroupfs path such as /tscri/pod-<id>, or a systemd slice name. */
  cgroupParent: string;
  /**
   * Whether tscri made the pod's cgroup: always when it named it (no
   * cgroup_parent), and for a cgroup_parent only when it did not exist yet.
   * A cgroup tscri did not make (kubelet's pod cgroup) is never removed.
   */
  cgroupCreated?: boolean;
  /** The infra process's own cgroup (a filesystem path) below the pod's, when the pod has one. */
  infraCgroup?: string;
  /** The pod's directory holding the files below. */
  dir: string;
  files: {
    hostname: string;
    hosts: string;
    resolvConf: string;
    /** The pod's /dev/shm (a tmpfs mount) unless host IPC is used. */
    shm?: string;
  };
  /** The pod's hostname (the request's, or the node's for a host-network pod without one). */
  hostname?: string;
  /** Pod IPs, the primary first. */
  ips: string[];
  /** Whether the CNI network was set up (and needs a DEL on stop). */
  networkSetUp: boolean;
  // Kept for teardown and status.
  /** The reserved name: <name>_<namespace>_<uid>_<attempt>. */
  name?: string;
  /** Set while RunPodSandbox is still setting the pod up (hidden from lists). */
  creating?: boolean;
  /** Start time (clock ticks) of infraPid, telling it apart from a reused pid. */
  infraStartTime?: number;
  /** The unshare process that forked the infra process. */
  infraParentPid?: number;
  /** The CNI config, args and result used at ADD, so DEL runs with the same ones. */
  network?: CniAttachment;
  /** The pod cgroup's resources as last written (RunPodSandbox or UpdatePodSandboxResources). */
  resources?: { overhead: LinuxContainerResources__Output | null; resources: LinuxContainerResources__Output | null };
  /** Nanoseconds since the epoch when the pod was stopped. */
  stoppedAt?: number;
}
