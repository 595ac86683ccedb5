// Original file: proto/nri.proto


export interface RunPodSandboxResponse {
}

export interface RunPodSandboxResponse__Output {
}
