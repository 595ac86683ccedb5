// Original file: proto/nri.proto


export interface Empty {
}

export interface Empty__Output {
}
