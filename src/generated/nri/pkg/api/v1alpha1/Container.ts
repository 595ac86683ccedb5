// Original file: proto/nri.proto

import type { ContainerState as _nri_pkg_api_v1alpha1_ContainerState, ContainerState__Output as _nri_pkg_api_v1alpha1_ContainerState__Output } from '../../../../nri/pkg/api/v1alpha1/ContainerState';
import type { Mount as _nri_pkg_api_v1alpha1_Mount, Mount__Output as _nri_pkg_api_v1alpha1_Mount__Output } from '../../../../nri/pkg/api/v1alpha1/Mount';
import type { Hooks as _nri_pkg_api_v1alpha1_Hooks, Hooks__Output as _nri_pkg_api_v1alpha1_Hooks__Output } from '../../../../nri/pkg/api/v1alpha1/Hooks';
import type { LinuxContainer as _nri_pkg_api_v1alpha1_LinuxContainer, LinuxContainer__Output as _nri_pkg_api_v1alpha1_LinuxContainer__Output } from '../../../../nri/pkg/api/v1alpha1/LinuxContainer';
import type { POSIXRlimit as _nri_pkg_api_v1alpha1_POSIXRlimit, POSIXRlimit__Output as _nri_pkg_api_v1alpha1_POSIXRlimit__Output } from '../../../../nri/pkg/api/v1alpha1/POSIXRlimit';
import type { CDIDevice as _nri_pkg_api_v1alpha1_CDIDevice, CDIDevice__Output as _nri_pkg_api_v1alpha1_CDIDevice__Output } from '../../../../nri/pkg/api/v1alpha1/CDIDevice';
import type { User as _nri_pkg_api_v1alpha1_User, User__Output as _nri_pkg_api_v1alpha1_User__Output } from '../../../../nri/pkg/api/v1alpha1/User';
import type { Long } from '@grpc/proto-loader';

export interface Container {
  'id'?: (string);
  'pod_sandbox_id'?: (string);
  'name'?: (string);
  'state'?: (_nri_pkg_api_v1alpha1_ContainerState);
  'labels'?: ({[key: string]: string});
  'annotations'?: ({[key: string]: string});
  'args'?: (string)[];
  'env'?: (string)[];
  'mounts'?: (_nri_pkg_api_v1alpha1_Mount)[];
  'hooks'?: (_nri_pkg_api_v1alpha1_Hooks | null);
  'linux'?: (_nri_pkg_api_v1alpha1_LinuxContainer | null);
  'pid'?: (number);
  'rlimits'?: (_nri_pkg_api_v1alpha1_POSIXRlimit)[];
  'created_at'?: (number | string | Long);
  'started_at'?: (number | string | Long);
  'finished_at'?: (number | string | Long);
  'exit_code'?: (number);
  'status_reason'?: (string);
  'status_message'?: (string);
  'CDI_devices'?: (_nri_pkg_api_v1alpha1_CDIDevice)[];
  'user'?: (_nri_pkg_api_v1alpha1_User | null);
}

export interface Container__Output {
  'id': (string);
  'pod_sandbox_id': (string);
  'name': (string);
  'state': (_nri_pkg_api_v1alpha1_ContainerState__Output);
  'labels': ({[key: string]: string});
  'annotations': ({[key: string]: string});
  'args': (string)[];
  'env': (string)[];
  'mounts': (_nri_pkg_api_v1alpha1_Mount__Output)[];
  'hooks': (_nri_pkg_api_v1alpha1_Hooks__Output | null);
  'linux': (_nri_pkg_api_v1alpha1_LinuxContainer__Output | null);
  'pid': (number);
  'rlimits': (_nri_pkg_api_v1alpha1_POSIXRlimit__Output)[];
  'created_at': (number);
  'started_at': (number);
  'finished_at': (number);
  'exit_code': (number);
  'status_reason': (string);
  'status_message': (string);
  'CDI_devices': (_nri_pkg_api_v1alpha1_CDIDevice__Output)[];
  'user': (_nri_pkg_api_v1alpha1_User__Output | null);
}
