// Original file: proto/nri.proto


export interface StopPodSandboxResponse {
}

export interface StopPodSandboxResponse__Output {
}
