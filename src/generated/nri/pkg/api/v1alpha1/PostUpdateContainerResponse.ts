// Original file: proto/nri.proto


export interface PostUpdateContainerResponse {
}

export interface PostUpdateContainerResponse__Output {
}
