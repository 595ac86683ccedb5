// Original file: proto/nri.proto


export interface User {
  'uid'?: (number);
  'gid'?: (number);
  'additional_gids'?: (number)[];
}

export interface User__Output {
  'uid': (number);
  'gid': (number);
  'additional_gids': (number)[];
}
