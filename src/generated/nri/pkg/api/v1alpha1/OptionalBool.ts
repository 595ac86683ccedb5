// Original file: proto/nri.proto


export interface OptionalBool {
  'value'?: (boolean);
}

export interface OptionalBool__Output {
  'value': (boolean);
}
