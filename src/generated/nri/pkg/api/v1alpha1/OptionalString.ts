// Original file: proto/nri.proto


export interface OptionalString {
  'value'?: (string);
}

export interface OptionalString__Output {
  'value': (string);
}
