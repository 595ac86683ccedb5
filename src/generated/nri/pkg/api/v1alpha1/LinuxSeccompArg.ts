// Original file: proto/nri.proto

import type { Long } from '@grpc/proto-loader';

export interface LinuxSeccompArg {
  'index'?: (number);
  'value'?: (number | string | Long);
  'value_two'?: (number | string | Long);
  'op'?: (string);
}

export interface LinuxSeccompArg__Output {
  'index': (number);
  'value': (number);
  'value_two': (number);
  'op': (string);
}
