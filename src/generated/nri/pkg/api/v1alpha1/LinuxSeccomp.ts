// Original file: proto/nri.proto

import type { OptionalUInt32 as _nri_pkg_api_v1alpha1_OptionalUInt32, OptionalUInt32__Output as _nri_pkg_api_v1alpha1_OptionalUInt32__Output } from '../../../../nri/pkg/api/v1alpha1/OptionalUInt32';
import type { LinuxSyscall as _nri_pkg_api_v1alpha1_LinuxSyscall, LinuxSyscall__Output as _nri_pkg_api_v1alpha1_LinuxSyscall__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxSyscall';

export interface LinuxSeccomp {
  'default_action'?: (string);
  'default_errno'?: (_nri_pkg_api_v1alpha1_OptionalUInt32 | null);
  'architectures'?: (string)[];
  'flags'?: (string)[];
  'listener_path'?: (string);
  'listener_metadata'?: (string);
  'syscalls'?: (_nri_pkg_api_v1alpha1_LinuxSyscall)[];
}

export interface LinuxSeccomp__Output {
  'default_action': (string);
  'default_errno': (_nri_pkg_api_v1alpha1_OptionalUInt32__Output | null);
  'architectures': (string)[];
  'flags': (string)[];
  'listener_path': (string);
  'listener_metadata': (string);
  'syscalls': (_nri_pkg_api_v1alpha1_LinuxSyscall__Output)[];
}
