// The pods the benchmarks start by the dozen: kubelet's request shapes (its
// namespace options, a cgroup parent under the benchmark's own) with one
// busybox container sleeping.
import type { Call } from './cri.ts';

/** What kubelet sends for a pod without hostNetwork, hostIPC or shareProcessNamespace. */
export const KUBELET_NAMESPACES = { network: 'POD', pid: 'CONTAINER', ipc: 'POD' };

export interface SleepPod {
  pod: string;
  ctr: string;
  config: object;
}

/** A pod's config: name and uid made unique by tag, its cgroup under cgroupParent. */
export function podConfig(name: string, tag: string, cgroupParent: string, logDirectory?: string): object {
  return {
    metadata: { name, namespace: 'bench', uid: `${name}-${tag}`, attempt: 0 },
    ...(logDirectory ? { log_directory: logDirectory } : {}),
    linux: { cgroup_parent: `${cgroupParent}/${name}-${tag}`, security_context: { namespace_options: KUBELET_NAMESPACES } },
  };
}

/** A container that sleeps for an hour, logging to logPath when given. */
export function sleepContainer(image: string, name = 'c', logPath?: string): object {
  return {
    metadata: { name },
    image: { image },
    command: ['sleep', '3600'],
    ...(logPath ? { log_path: logPath } : {}),
    linux: { security_context: { namespace_options: KUBELET_NAMESPACES } },
  };
}

/** Runs a pod and starts its sleeping container. */
export async function startSleepPod(call: Call, image: string, name: string, tag: string, cgroupParent: string): Promise<SleepPod> {
  const config = podConfig(name, tag, cgroupParent);
  const { pod_sandbox_id } = await call('RunPodSandbox', { config });
  const { container_id } = await call('CreateContainer', { pod_sandbox_id, config: sleepContainer(image), sandbox_config: config });
  await call('StartContainer', { container_id });
  return { pod: pod_sandbox_id, ctr: container_id, config };
}

/** Stops and removes the container, then the pod. */
export async function removeSleepPod(call: Call, p: SleepPod): Promise<void> {
  await call('StopContainer', { container_id: p.ctr, timeout: 0 });
  await call('RemoveContainer', { container_id: p.ctr });
  await call('StopPodSandbox', { pod_sandbox_id: p.pod });
  await call('RemovePodSandbox', { pod_sandbox_id: p.pod });
}
