// Original file: proto/nri.proto

import type { Hook as _nri_pkg_api_v1alpha1_Hook, Hook__Output as _nri_pkg_api_v1alpha1_Hook__Output } from '../../../../nri/pkg/api/v1alpha1/Hook';

export interface Hooks {
  'prestart'?: (_nri_pkg_api_v1alpha1_Hook)[];
  'create_runtime'?: (_nri_pkg_api_v1alpha1_Hook)[];
  'create_container'?: (_nri_pkg_api_v1alpha1_Hook)[];
  'start_container'?: (_nri_pkg_api_v1alpha1_Hook)[];
  'poststart'?: (_nri_pkg_api_v1alpha1_Hook)[];
  'poststop'?: (_nri_pkg_api_v1alpha1_Hook)[];
}

export interface Hooks__Output {
  'prestart': (_nri_pkg_api_v1alpha1_Hook__Output)[];
  'create_runtime': (_nri_pkg_api_v1alpha1_Hook__Output)[];
  'create_container': (_nri_pkg_api_v1alpha1_Hook__Output)[];
  'start_container': (_nri_pkg_api_v1alpha1_Hook__Output)[];
  'poststart': (_nri_pkg_api_v1alpha1_Hook__Output)[];
  'poststop': (_nri_pkg_api_v1alpha1_Hook__Output)[];
}
