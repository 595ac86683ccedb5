// Original file: proto/nri.proto


export interface UpdatePodSandboxResponse {
}

export interface UpdatePodSandboxResponse__Output {
}
