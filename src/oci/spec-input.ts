// What the spec options read (the request, the pod, the image, the host) and
// the shape of the spec they fill in.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { ImageSettings as ImageConfig, SpecSandbox } from './request.ts';
import type { Capabilities, Device, DeviceRule, Linux, Mount, Namespace, Process, Resources, Spec } from './types.ts';
import type { HugetlbSupport } from './resources.ts';

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

/** One rule of the spec: reads the input, writes its part of the spec, throws SpecError on a request it cannot honour. */
export type SpecOpt = (spec: BuiltSpec, input: SpecInput) => void;
