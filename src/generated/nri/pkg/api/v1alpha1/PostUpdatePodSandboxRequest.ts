// Original file: proto/nri.proto

import type { PodSandbox as _nri_pkg_api_v1alpha1_PodSandbox, PodSandbox__Output as _nri_pkg_api_v1alpha1_PodSandbox__Output } from '../../../../nri/pkg/api/v1alpha1/PodSandbox';

export interface PostUpdatePodSandboxRequest {
  'pod'?: (_nri_pkg_api_v1alpha1_PodSandbox | null);
}

export interface PostUpdatePodSandboxRequest__Output {
  'pod': (_nri_pkg_api_v1alpha1_PodSandbox__Output | null);
}
