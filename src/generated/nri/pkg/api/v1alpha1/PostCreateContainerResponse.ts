// Original file: proto/nri.proto


export interface PostCreateContainerResponse {
}

export interface PostCreateContainerResponse__Output {
}
