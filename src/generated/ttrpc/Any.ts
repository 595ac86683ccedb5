// Original file: proto/ttrpc.proto


export interface Any {
  'type_url'?: (string);
  'value'?: (Buffer | Uint8Array | string);
}

export interface Any__Output {
  'type_url': (string);
  'value': (Buffer);
}
