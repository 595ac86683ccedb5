// Original file: proto/nri.proto


export interface PluginInstance {
  'name'?: (string);
  'index'?: (string);
}

export interface PluginInstance__Output {
  'name': (string);
  'index': (string);
}
