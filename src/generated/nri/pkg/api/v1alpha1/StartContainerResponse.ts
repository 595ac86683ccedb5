// Original file: proto/nri.proto


export interface StartContainerResponse {
}

export interface StartContainerResponse__Output {
}
