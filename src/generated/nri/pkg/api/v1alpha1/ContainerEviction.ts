// Original file: proto/nri.proto


export interface ContainerEviction {
  'container_id'?: (string);
  'reason'?: (string);
}

export interface ContainerEviction__Output {
  'container_id': (string);
  'reason': (string);
}
