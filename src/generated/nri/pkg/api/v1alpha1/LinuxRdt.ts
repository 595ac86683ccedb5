// Original file: proto/nri.proto

import type { OptionalString as _nri_pkg_api_v1alpha1_OptionalString, OptionalString__Output as _nri_pkg_api_v1alpha1_OptionalString__Output } from '../../../../nri/pkg/api/v1alpha1/OptionalString';
import type { OptionalRepeatedString as _nri_pkg_api_v1alpha1_OptionalRepeatedString, OptionalRepeatedString__Output as _nri_pkg_api_v1alpha1_OptionalRepeatedString__Output } from '../../../../nri/pkg/api/v1alpha1/OptionalRepeatedString';
import type { OptionalBool as _nri_pkg_api_v1alpha1_OptionalBool, OptionalBool__Output as _nri_pkg_api_v1alpha1_OptionalBool__Output } from '../../../../nri/pkg/api/v1alpha1/OptionalBool';

export interface LinuxRdt {
  'clos_id'?: (_nri_pkg_api_v1alpha1_OptionalString | null);
  'schemata'?: (_nri_pkg_api_v1alpha1_OptionalRepeatedString | null);
  'enable_monitoring'?: (_nri_pkg_api_v1alpha1_OptionalBool | null);
  'remove'?: (boolean);
}

export interface LinuxRdt__Output {
  'clos_id': (_nri_pkg_api_v1alpha1_OptionalString__Output | null);
  'schemata': (_nri_pkg_api_v1alpha1_OptionalRepeatedString__Output | null);
  'enable_monitoring': (_nri_pkg_api_v1alpha1_OptionalBool__Output | null);
  'remove': (boolean);
}
