// Original file: proto/nri.proto

import type { LinuxResources as _nri_pkg_api_v1alpha1_LinuxResources, LinuxResources__Output as _nri_pkg_api_v1alpha1_LinuxResources__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxResources';
import type { LinuxNamespace as _nri_pkg_api_v1alpha1_LinuxNamespace, LinuxNamespace__Output as _nri_pkg_api_v1alpha1_LinuxNamespace__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxNamespace';

export interface LinuxPodSandbox {
  'pod_overhead'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
  'pod_resources'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
  'cgroup_parent'?: (string);
  'cgroups_path'?: (string);
  'namespaces'?: (_nri_pkg_api_v1alpha1_LinuxNamespace)[];
  'resources'?: (_nri_pkg_api_v1alpha1_LinuxResources | null);
}

export interface LinuxPodSandbox__Output {
  'pod_overhead': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
  'pod_resources': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
  'cgroup_parent': (string);
  'cgroups_path': (string);
  'namespaces': (_nri_pkg_api_v1alpha1_LinuxNamespace__Output)[];
  'resources': (_nri_pkg_api_v1alpha1_LinuxResources__Output | null);
}
