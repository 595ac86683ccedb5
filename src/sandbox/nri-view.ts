// A pod sandbox as NRI plugins see it (NRI's PodSandbox message).
import { criToNriResources } from '../nri/resources.ts';
import type { PodSandbox } from '../nri/types.ts';
import type { SandboxRecord } from './record.ts';

export function nriPod(record: SandboxRecord): PodSandbox {
  const meta = record.config.metadata;
  const namespaces = Object.entries(record.namespaces)
    .filter(([, path]) => path)
    .map(([type, path]) => ({ type: type === 'network' ? 'network' : type, path }));
  return {
    id: record.id,
    name: meta?.name ?? '',
    uid: meta?.uid ?? '',
    namespace: meta?.namespace ?? '',
    labels: record.config.labels ?? {},
    annotations: record.config.annotations ?? {},
    runtime_handler: record.runtimeHandler,
    linux: {
      cgroup_parent: record.cgroupParent,
      cgroups_path: record.cgroupParent,
      namespaces,
      pod_overhead: record.resources?.overhead ? criToNriResources(record.resources.overhead) : null,
      pod_resources: record.resources?.resources ? criToNriResources(record.resources.resources) : null,
    },
    pid: record.infraPid ?? 0,
    ips: record.ips,
  };
}
