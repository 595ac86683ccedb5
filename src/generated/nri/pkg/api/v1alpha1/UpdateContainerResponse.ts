// Original file: proto/nri.proto

import type { ContainerUpdate as _nri_pkg_api_v1alpha1_ContainerUpdate, ContainerUpdate__Output as _nri_pkg_api_v1alpha1_ContainerUpdate__Output } from '../../../../nri/pkg/api/v1alpha1/ContainerUpdate';
import type { ContainerEviction as _nri_pkg_api_v1alpha1_ContainerEviction, ContainerEviction__Output as _nri_pkg_api_v1alpha1_ContainerEviction__Output } from '../../../../nri/pkg/api/v1alpha1/ContainerEviction';

export interface UpdateContainerResponse {
  'update'?: (_nri_pkg_api_v1alpha1_ContainerUpdate)[];
  'evict'?: (_nri_pkg_api_v1alpha1_ContainerEviction)[];
}

export interface UpdateContainerResponse__Output {
  'update': (_nri_pkg_api_v1alpha1_ContainerUpdate__Output)[];
  'evict': (_nri_pkg_api_v1alpha1_ContainerEviction__Output)[];
}
