// A container as NRI plugins see it (NRI's Container message): from its
// record and, where the caller has it, its OCI spec (args, env, mounts, hooks
// and resources as the runtime will run them).
import { ociToNriResources, criToNriResources, type OciResourcesView } from '../nri/resources.ts';
import type { AdjustableSpec } from '../nri/spec.ts';
import type { Container, Hook } from '../nri/types.ts';
import type { ContainerRecord } from './record.ts';

const STATES: Record<ContainerRecord['state'], Container['state']> = {
  CONTAINER_CREATED: 'CONTAINER_CREATED',
  CONTAINER_RUNNING: 'CONTAINER_RUNNING',
  CONTAINER_EXITED: 'CONTAINER_STOPPED',
  CONTAINER_UNKNOWN: 'CONTAINER_UNKNOWN',
};

type OciHook = { path: string; args?: string[]; env?: string[]; timeout?: number };

function nriHooks(hooks: OciHook[] | undefined): Hook[] {
  return (hooks ?? []).map((h) => ({ path: h.path, args: h.args ?? [], env: h.env ?? [], timeout: h.timeout === undefined ? null : { value: h.timeout } }));
}

export function nriContainer(record: ContainerRecord, spec?: AdjustableSpec): Container {
  const config = record.config;
  const container: Container = {
    id: record.id,
    pod_sandbox_id: record.sandboxId,
    name: config.metadata?.name ?? '',
    state: STATES[record.state],
    labels: config.labels ?? {},
    annotations: config.annotations ?? {},
    pid: record.pid,
    created_at: record.createdAt,
    started_at: record.startedAt,
    finished_at: record.finishedAt,
    exit_code: record.exitCode,
    status_reason: record.reason,
    status_message: record.message,
  };
  if (record.user?.linux) {
    const u = record.user.linux;
    container.user = { uid: Number(u.uid ?? 0), gid: Number(u.gid ?? 0), additional_gids: (u.supplemental_groups ?? []).map(Number) };
  }
  if (spec) {
    const hooks = spec.hooks as Record<string, OciHook[]> | undefined;
    container.args = spec.process?.args ?? [];
    container.env = spec.process?.env ?? [];
    container.mounts = (spec.mounts ?? []).map((m) => ({ destination: m.destination, type: m.type ?? '', source: m.source ?? '', options: m.options ?? [] }));
    container.hooks = {
      prestart: nriHooks(hooks?.prestart),
      create_runtime: nriHooks(hooks?.createRuntime),
      create_container: nriHooks(hooks?.createContainer),
      start_container: nriHooks(hooks?.startContainer),
      poststart: nriHooks(hooks?.poststart),
      poststop: nriHooks(hooks?.poststop),
    };
    container.rlimits = (spec.process?.rlimits ?? []).map((r) => ({ type: r.type, hard: r.hard, soft: r.soft }));
    container.linux = {
      namespaces: (spec.linux?.namespaces ?? []).map((n) => ({ type: n.type, path: n.path ?? '' })),
      devices: (spec.linux?.devices ?? []).map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor })),
      resources: ociToNriResources((spec.linux?.resources ?? {}) as OciResourcesView),
      oom_score_adj: spec.process?.oomScoreAdj === undefined ? null : { value: spec.process.oomScoreAdj },
      cgroups_path: spec.linux?.cgroupsPath ?? record.cgroupsPath,
      sysctl: spec.linux?.sysctl ?? {},
    };
  } else {
    container.args = [...(config.command ?? []), ...(config.args ?? [])];
    container.env = (config.envs ?? []).map((e) => `${e.key}=${e.value}`);
    container.mounts = (config.mounts ?? []).map((m) => ({
      destination: m.container_path,
      source: m.host_path,
      type: 'bind',
      options: m.readonly ? ['rbind', 'ro'] : ['rbind'],
    }));
    container.linux = { resources: criToNriResources(record.resources), cgroups_path: record.cgroupsPath };
  }
  return container;
}
