// Original file: proto/nri.proto


export interface PostStartContainerResponse {
}

export interface PostStartContainerResponse__Output {
}
