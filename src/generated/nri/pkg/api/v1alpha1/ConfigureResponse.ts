// Original file: proto/nri.proto


export interface ConfigureResponse {
  'events'?: (number);
}

export interface ConfigureResponse__Output {
  'events': (number);
}
