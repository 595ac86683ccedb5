// The NRI steps of the pod lifecycle, as the sandbox service calls them (the
// container layer's NRI bridge implements them).
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { SandboxRecord } from './record.ts';

type Resources = LinuxContainerResources__Output;

export interface PodNriHooks {
  /** Before the pod is reported ready; a plugin's refusal fails RunPodSandbox (the caller undoes the pod). */
  runPodSandbox(pod: SandboxRecord): Promise<void>;
  /** Once per pod, after its containers stopped and before its network is torn down. */
  stopPodSandbox(pod: SandboxRecord): Promise<void>;
  removePodSandbox(pod: SandboxRecord): Promise<void>;
  /** A plugin's refusal fails UpdatePodSandboxResources. */
  updatePodSandbox(pod: SandboxRecord, overhead: Resources | null, resources: Resources | null): Promise<void>;
  postUpdatePodSandbox(pod: SandboxRecord): Promise<void>;
}

/** No NRI: every step does nothing. */
export const NO_POD_NRI: PodNriHooks = {
  async runPodSandbox() {},
  async stopPodSandbox() {},
  async removePodSandbox() {},
  async updatePodSandbox() {},
  async postUpdatePodSandbox() {},
};
