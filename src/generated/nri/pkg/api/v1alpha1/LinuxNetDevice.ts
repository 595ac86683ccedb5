// Original file: proto/nri.proto


export interface LinuxNetDevice {
  'name'?: (string);
}

export interface LinuxNetDevice__Output {
  'name': (string);
}
