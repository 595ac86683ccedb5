// Original file: proto/nri.proto


export interface PostUpdatePodSandboxResponse {
}

export interface PostUpdatePodSandboxResponse__Output {
}
