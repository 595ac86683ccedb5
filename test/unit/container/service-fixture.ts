// A ContainerService on a temp root/state with a fake pod, image and rootfs
// (the busybox tree, read-only) and the runtime's default spec, so the
// container lifecycle runs with real runc and conmon but nothing else.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { defaultConfig } from '../../../src/config/config.ts';
import { ContainerService, type ContainerDeps } from '../../../src/container/service.ts';
import type { SandboxRecord } from '../../../src/sandbox/record.ts';
import { makeBusyboxRootfs } from '../../helpers/busybox.ts';

export interface Env {
  dir: string;
  deps: ContainerDeps;
  sandbox: SandboxRecord;
  service: ContainerService;
}

export async function setup(t: any, options: { root?: string } = {}): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-svc-'));
  const rootfs = join(dir, 'busybox');
  await makeBusyboxRootfs(rootfs);
  const config = defaultConfig();
  config.root = options.root ?? join(dir, 'root');
  config.state = join(dir, 'state');
  const sandbox = {
    id: 'a'.repeat(64),
    config: { metadata: { name: 'pod', namespace: 'ns', uid: 'uid1', attempt: 0 }, log_directory: join(dir, 'logs'), labels: {}, annotations: {} },
    state: 'SANDBOX_READY',
    createdAt: Date.now() * 1e6,
    runtimeHandler: '',
    namespaces: {},
    cgroupParent: '',
    dir,
    files: { hostname: '', hosts: '', resolvConf: '' },
    ips: [],
    networkSetUp: false,
  } as unknown as SandboxRecord;
  const deps: ContainerDeps = {
    config,
    log: pino({ level: 'silent' }),
    sandbox: (id) => (id === sandbox.id ? sandbox : undefined),
    resolveImage: async (ref) =>
      ref === 'busybox' ? { id: 'sha256:' + 'b'.repeat(64), repo_tags: ['busybox:latest'], repo_digests: [], config: { config: {} }, chainIds: [] } : undefined,
    prepareRootfs: async () => undefined,
    removeRootfs: async () => undefined,
    deleteStateDir: (path) => rm(path, { recursive: true, force: true }),
    upperDir: (id) => join(dir, 'upper-' + id),
    makeSpec: async (req) => {
      const bundle = join(dir, 'spec-' + req.id);
      execFileSync('mkdir', ['-p', bundle]);
      execFileSync('/usr/sbin/runc', ['spec', '--bundle', bundle]);
      const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
      await rm(bundle, { recursive: true });
      spec.root = { path: rootfs, readonly: true };
      spec.process.terminal = req.config.tty;
      spec.process.args = [...req.config.command, ...req.config.args];
      spec.process.env = [...spec.process.env, ...req.config.envs.map((e) => `${e.key}=${e.value}`)];
      spec.linux.cgroupsPath = req.cgroupsPath;
      const mem = req.config.linux?.resources?.memory_limit_in_bytes;
      if (mem) spec.linux.resources = { ...spec.linux.resources, memory: { limit: mem, swap: mem } };
      return spec;
    },
    cgroupsPath: (_s, id) => `/tscri-test-${id.slice(0, 16)}`,
    ociResources: (r) => ({
      cpu: { shares: r.cpu_shares || undefined, quota: r.cpu_quota || undefined, period: r.cpu_period || undefined },
      memory: r.memory_limit_in_bytes ? { limit: r.memory_limit_in_bytes, swap: r.memory_limit_in_bytes } : undefined,
    }),
  };
  const service = new ContainerService(deps);
  await service.load();
  const env = { dir, deps, sandbox, service };
  t.after(async () => {
    for (const r of env.service.records()) await env.service.remove(r.id).catch(() => undefined);
    // runc would make its state directory again if it were still deleting when dir goes.
    await env.service.cleanupsDone();
    env.service.close();
    await rm(dir, { recursive: true, force: true });
  });
  return env;
}

export function containerConfig(name: string, command: string[], extra: Record<string, unknown> = {}): any {
  return {
    metadata: { name, attempt: 0 },
    image: { image: 'busybox', annotations: {}, user_specified_image: '', runtime_handler: '' },
    command,
    args: [],
    working_dir: '',
    envs: [],
    mounts: [],
    devices: [],
    labels: { app: name },
    annotations: {},
    log_path: `${name}.log`,
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: null,
    CDI_devices: [],
    stop_signal: 'SIGNAL_RUNTIME_DEFAULT',
    ...extra,
  };
}

export async function waitState(service: ContainerService, id: string, state: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (service.get(id).state === state) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`container ${id} never reached ${state}; it is ${service.get(id).state}`);
}

/** Whether pid runs; a zombie (exited, not yet reaped by init) counts as gone. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
