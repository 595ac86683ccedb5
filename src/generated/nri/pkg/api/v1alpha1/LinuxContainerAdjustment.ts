// Original file: proto/nri.proto

import type { LinuxDevice as _nri_pkg_api_v1alpha1_LinuxDevice, LinuxDevice__Output as _nri_pkg_api_v1alpha1_LinuxDevice__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxDevice';
import type { LinuxResources as _nri_pkg_api_v1alpha1_LinuxResources, LinuxResources__Output as _nri_pkg_api_v1alpha1_LinuxResources__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxResources';
import type { OptionalInt as _nri_pkg_api_v1alpha1_OptionalInt, OptionalInt__Output as _nri_pkg_api_v1alpha1_OptionalInt__Output } from '../../../../nri/pkg/api/v1alpha1/OptionalInt';
import type { LinuxIOPriority as _nri_pkg_api_v1alpha1_LinuxIOPriority, LinuxIOPriority__Output as _nri_pkg_api_v1alpha1_LinuxIOPriority__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxIOPriority';
import type { LinuxSeccomp as _nri_pkg_api_v1alpha1_LinuxSeccomp, LinuxSeccomp__Output as _nri_pkg_api_v1alpha1_LinuxSeccomp__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxSeccomp';
import type { LinuxNamespace as _nri_pkg_api_v1alpha1_LinuxNamespace, LinuxNamespace__Output as _nri_pkg_api_v1alpha1_LinuxNamespace__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxNamespace';
import type { LinuxNetDevice as _nri_pkg_api_v1alpha1_LinuxNetDevice, LinuxNetDevice__Output as _nri_pkg_api_v1alpha1_LinuxNetDevice__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxNetDevice';
import type { LinuxScheduler as _nri_pkg_api_v1alpha1_LinuxScheduler, LinuxScheduler__Output as _nri_pkg_api_v1alpha1_LinuxScheduler__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxScheduler';
import type { LinuxRdt as _nri_pkg_api_v1alpha1_LinuxRdt, LinuxRdt__Output as _nri_pkg_api_v1alpha1_LinuxRdt__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxRdt';
import type { LinuxMemoryPolicy as _nri_pkg_api_v1alpha1_LinuxMemoryPolicy, LinuxMemoryPolicy__Output as _nri_pkg_api_v1alpha1_LinuxMemoryPolicy__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxMemoryPolicy';

export interface LinuxContainerAdjustment {
  'devices'?: (_nri_pkg_api_v1alpha1_LinuxDevice)[];
  'resources'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
  'cgroups_path'?: (string);
  'oom_score_adj'?: (_nri_pkg_api_v1alpha1_OptionalInt | null);
  'io_priority'?: (_nri_pkg_api_v1alpha1_LinuxIOPriority | null);
  'seccomp_policy'?: (_nri_pkg_api_v1alpha1_LinuxSeccomp | null);
  'namespaces'?: (_nri_pkg_api_v1alpha1_LinuxNamespace)[];
  'sysctl'?: ({[key: string]: string});
  'net_devices'?: ({[key: string]: _nri_pkg_api_v1alpha1_LinuxNetDevice});
  'scheduler'?: (_nri_pkg_api_v1alpha1_LinuxScheduler | null);
  'rdt'?: (_nri_pkg_api_v1alpha1_LinuxRdt | null);
  'memory_policy'?: (_nri_pkg_api_v1alpha1_LinuxMemoryPolicy | null);
}

export interface LinuxContainerAdjustment__Output {
  'devices': (_nri_pkg_api_v1alpha1_LinuxDevice__Output)[];
  'resources': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
  'cgroups_path': (string);
  'oom_score_adj': (_nri_pkg_api_v1alpha1_OptionalInt__Output | null);
  'io_priority': (_nri_pkg_api_v1alpha1_LinuxIOPriority__Output | null);
  'seccomp_policy': (_nri_pkg_api_v1alpha1_LinuxSeccomp__Output | null);
  'namespaces': (_nri_pkg_api_v1alpha1_LinuxNamespace__Output)[];
  'sysctl': ({[key: string]: string});
  'net_devices': ({[key: string]: _nri_pkg_api_v1alpha1_LinuxNetDevice__Output});
  'scheduler': (_nri_pkg_api_v1alpha1_LinuxScheduler__Output | null);
  'rdt': (_nri_pkg_api_v1alpha1_LinuxRdt__Output | null);
  'memory_policy': (_nri_pkg_api_v1alpha1_LinuxMemoryPolicy__Output | null);
}
