// Original file: proto/nri.proto


export interface OptionalRepeatedString {
  'value'?: (string)[];
}

export interface OptionalRepeatedString__Output {
  'value': (string)[];
}
