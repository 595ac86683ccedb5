// What an OCI spec is built from: the container request, the pod it joins and the
// image it runs. The container service fills these in; the oci folder only reads them.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';

/** The parts of a pod sandbox a container's spec depends on. */
export interface SpecSandbox {
  id: string;
  config: PodSandboxConfig__Output;
  /** Pinned namespace files; absent means the host's namespace is used. */
  namespaces: { network?: string; ipc?: string; uts?: string; pid?: string };
  files: { hostname: string; hosts: string; resolvConf: string; shm?: string };
  /** The pod's runtime handler; empty or absent is the default handler. */
  runtimeHandler?: string;
  /** The pod's hostname, when the sandbox kept it. */
  hostname?: string;
}

/** The runtime settings of an image config that a container inherits. */
export interface ImageSettings {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  User?: string | null;
  WorkingDir?: string | null;
  StopSignal?: string | null;
}

export interface ResolvedImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  /** The OCI image config; its `config` holds the runtime settings. */
  config: { config?: ImageSettings & { Volumes?: Record<string, unknown> } };
  chainIds: string[];
}

export interface SpecRequest {
  id: string;
  config: ContainerConfig__Output;
  sandbox: SpecSandbox;
  image: ResolvedImage;
  /** The rootfs directory (already mounted). */
  rootfs: string;
  cgroupsPath: string;
  /** For the TARGET pid mode: the target container's pid namespace file. */
  targetPidNamespace?: string;
}
