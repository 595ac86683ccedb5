// Original file: proto/nri.proto


export interface OptionalFileMode {
  'value'?: (number);
}

export interface OptionalFileMode__Output {
  'value': (number);
}
