// Original file: proto/nri.proto


export interface RemoveContainerResponse {
}

export interface RemoveContainerResponse__Output {
}
