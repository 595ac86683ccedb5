// Original file: proto/nri.proto

import type { Long } from '@grpc/proto-loader';

export interface OptionalInt {
  'value'?: (number | string | Long);
}

export interface OptionalInt__Output {
  'value': (number);
}
