// Original file: proto/nri.proto

import type { LinuxContainerUpdate as _nri_pkg_api_v1alpha1_LinuxContainerUpdate, LinuxContainerUpdate__Output as _nri_pkg_api_v1alpha1_LinuxContainerUpdate__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxContainerUpdate';

export interface ContainerUpdate {
  'container_id'?: (string);
  'linux'?: (_nri_pkg_api_v1alpha1_LinuxContainerUpdate | null);
  'ignore_failure'?: (boolean);
}

export interface ContainerUpdate__Output {
  'container_id': (string);
  'linux': (_nri_pkg_api_v1alpha1_LinuxContainerUpdate__Output | null);
  'ignore_failure': (boolean);
}
