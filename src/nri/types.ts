// Short names for the NRI message types generated from proto/nri.proto. The
// plain name is what the runtime builds and sends; *Out is what a decoded
// message looks like (every field present, defaults filled in).
export type { PodSandbox, PodSandbox__Output as PodSandboxOut } from '../generated/nri/pkg/api/v1alpha1/PodSandbox.ts';
export type { Container, Container__Output as ContainerOut } from '../generated/nri/pkg/api/v1alpha1/Container.ts';
export type { ContainerAdjustment, ContainerAdjustment__Output as ContainerAdjustmentOut } from '../generated/nri/pkg/api/v1alpha1/ContainerAdjustment.ts';
export type { LinuxContainerAdjustment } from '../generated/nri/pkg/api/v1alpha1/LinuxContainerAdjustment.ts';
export type { ContainerUpdate, ContainerUpdate__Output as ContainerUpdateOut } from '../generated/nri/pkg/api/v1alpha1/ContainerUpdate.ts';
export type { ContainerEviction, ContainerEviction__Output as ContainerEvictionOut } from '../generated/nri/pkg/api/v1alpha1/ContainerEviction.ts';
export type { LinuxResources, LinuxResources__Output as LinuxResourcesOut } from '../generated/nri/pkg/api/v1alpha1/LinuxResources.ts';
export type { LinuxMemory } from '../generated/nri/pkg/api/v1alpha1/LinuxMemory.ts';
export type { LinuxCPU } from '../generated/nri/pkg/api/v1alpha1/LinuxCPU.ts';
export type { Mount, Mount__Output as MountOut } from '../generated/nri/pkg/api/v1alpha1/Mount.ts';
export type { KeyValue } from '../generated/nri/pkg/api/v1alpha1/KeyValue.ts';
export type { Hooks, Hooks__Output as HooksOut } from '../generated/nri/pkg/api/v1alpha1/Hooks.ts';
export type { Hook } from '../generated/nri/pkg/api/v1alpha1/Hook.ts';
export type { LinuxDevice } from '../generated/nri/pkg/api/v1alpha1/LinuxDevice.ts';
export type { LinuxNamespace } from '../generated/nri/pkg/api/v1alpha1/LinuxNamespace.ts';
export type { POSIXRlimit } from '../generated/nri/pkg/api/v1alpha1/POSIXRlimit.ts';
export type { LinuxContainer } from '../generated/nri/pkg/api/v1alpha1/LinuxContainer.ts';
export type { LinuxPodSandbox } from '../generated/nri/pkg/api/v1alpha1/LinuxPodSandbox.ts';
