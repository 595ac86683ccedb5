// Original file: proto/nri.proto

import type { PodSandbox as _nri_pkg_api_v1alpha1_PodSandbox, PodSandbox__Output as _nri_pkg_api_v1alpha1_PodSandbox__Output } from '../../../../nri/pkg/api/v1alpha1/PodSandbox';
import type { LinuxResources as _nri_pkg_api_v1alpha1_LinuxResources, LinuxResources__Output as _nri_pkg_api_v1alpha1_LinuxResources__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxResources';

export interface UpdatePodSandboxRequest {
  'pod'?: (_nri_pkg_api_v1alpha1_PodSandbox | null);
  'overhead_linux_resources'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
  'linux_resources'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
}

export interface UpdatePodSandboxRequest__Output {
  'pod': (_nri_pkg_api_v1alpha1_PodSandbox__Output | null);
  'overhead_linux_resources': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
  'linux_resources': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
}
