// Original file: proto/ttrpc.proto

import type { Any as _ttrpc_Any, Any__Output as _ttrpc_Any__Output } from '../ttrpc/Any';

export interface Status {
  'code'?: (number);
  'message'?: (string);
  'details'?: (_ttrpc_Any)[];
}

export interface Status__Output {
  'code': (number);
  'message': (string);
  'details': (_ttrpc_Any__Output)[];
}
