// The two runtimes the benchmark drives, each started fresh with its own
// root, state and socket: tscri (as bin/tscri runs it) and containerd 2.1.9's
// CRI plugin, unpacked from Debian's .deb (../shared/anchors/README.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { client, type Client } from './cri.ts';
import { processes } from './procs.ts';
import type { TestNetwork } from '../test/helpers/cni.ts';
import { NODE_ENV, NODE_FLAGS } from '../test/helpers/daemon.ts';
import type { TestRegistry } from '../test/helpers/registry.ts';

export const CONTAINERD_DIR = process.env.TSCRI_BENCH_CONTAINERD ?? '/opt/containerd-2.1.9/usr/bin';
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const NODE = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));

export interface Runtime {
  name: string;
  socket: string;
  client: Client;
  /** The daemon's pid. */
  pid: number;
  /** Per-pod processes the runtime keeps beside the workload: monitors (conmon, shims) and pause/infra processes. */
  monitors(): number[];
  stop(): Promise<void>;
}

async function waitServing(c: Client, child: ChildProcess, output: () => string): Promise<void> {
  for (let i = 0; ; i++) {
    if (
      await c.call('Version', {}, 1000).then(
        () => true,
        () => false,
      )
    )
      return;
    if (i > 300 || child.exitCode !== null) throw new Error(`the runtime did not start serving: ${output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

export interface TscriOptions {
  /** Extra node flags (the CPU profile run adds --cpu-prof). */
  nodeFlags?: string[];
  /** Another checkout of tscri to run instead of this one (to compare two versions). */
  checkout?: string;
  name?: string;
}

export async function startTscri(network: TestNetwork, cgroupParent: string, options: TscriOptions = {}): Promise<Runtime> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-bench-tscri-'));
  const socket = join(dir, 'tscri.sock');
  await writeFile(join(dir, 'tscri.toml'), `default_cgroup_parent = "${cgroupParent}"\n${network.toml}`);
  const node = existsSync(NODE) ? NODE : process.execPath;
  // The flags bin/tscri runs the daemon with.
  const cli = options.checkout ? join(options.checkout, 'src/cli.ts') : CLI;
  const args = [
    ...NODE_FLAGS,
    ...(options.nodeFlags ?? []),
    cli,
    'serve',
    '--config',
    join(dir, 'tscri.toml'),
    '--listen',
    `unix://${socket}`,
    '--root',
    join(dir, 'root'),
    '--state',
    join(dir, 'state'),
    '--log-level',
    'warn',
  ];
  const child = spawn(node, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...NODE_ENV } });
  let output = '';
  child.stderr!.on('data', (d) => (output = (output + d).slice(-20000)));
  const c = client(socket);
  await waitServing(c, child, () => output);
  return {
    name: options.name ?? 'tscri',
    socket,
    client: c,
    pid: child.pid!,
    monitors: () =>
      processes()
        .filter((p) => p.comm === 'conmon' && p.cmdline.includes(dir))
        .map((p) => p.pid),
    async stop() {
      c.close();
      await stopChild(child);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

export function containerdAvailable(): boolean {
  return existsSync(join(CONTAINERD_DIR, 'containerd')) && existsSync(join(CONTAINERD_DIR, 'containerd-shim-runc-v2'));
}

export async function startContainerd(network: TestNetwork, registry: TestRegistry, pause: string): Promise<Runtime> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-bench-containerd-'));
  const socket = join(dir, 'containerd.sock');
  const certs = join(dir, 'certs.d');
  await mkdir(join(certs, registry.host), { recursive: true });
  await writeFile(
    join(certs, registry.host, 'hosts.toml'),
    `server = "http://${registry.host}"\n[host."http://${registry.host}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  await writeFile(
    join(dir, 'config.toml'),
    [
      'version = 3',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      '[grpc]',
      `  address = "${socket}"`,
      "[plugins.'io.containerd.cri.v1.images']",
      "  snapshotter = 'overlayfs'",
      "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
      `    sandbox = "${pause}"`,
      "  [plugins.'io.containerd.cri.v1.images'.registry]",
      `    config_path = "${certs}"`,
      "[plugins.'io.containerd.transfer.v1.local']",
      `  config_path = "${certs}"`,
      "[plugins.'io.containerd.cri.v1.runtime']",
      '  restrict_oom_score_adj = true',
      "  [plugins.'io.containerd.cri.v1.runtime'.cni]",
      "    bin_dirs = ['/usr/lib/cni']",
      `    conf_dir = "${network.confDir}"`,
      "  [plugins.'io.containerd.cri.v1.runtime'.containerd]",
      "    default_runtime_name = 'runc'",
      "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
      "      runtime_type = 'io.containerd.runc.v2'",
      `      runtime_path = "${join(CONTAINERD_DIR, 'containerd-shim-runc-v2')}"`,
      "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
      "        BinaryName = '/usr/sbin/runc'",
      "[plugins.'io.containerd.nri.v1.nri']",
      '  disable = true',
      '',
    ].join('\n'),
  );
  // containerd looks its shim up in PATH first.
  const env = { ...process.env, PATH: `${CONTAINERD_DIR}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  const child = spawn(join(CONTAINERD_DIR, 'containerd'), ['--config', join(dir, 'config.toml'), '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let output = '';
  child.stderr!.on('data', (d) => (output = (output + d).slice(-20000)));
  const c = client(socket);
  await waitServing(c, child, () => output);
  return {
    name: 'containerd',
    socket,
    client: c,
    pid: child.pid!,
    monitors() {
      const all = processes();
      const shims = new Set(all.filter((p) => p.comm.startsWith('containerd-shim') && p.cmdline.includes(socket)).map((p) => p.pid));
      const pauses = all.filter((p) => shims.has(p.ppid) && p.comm === 'catatonit').map((p) => p.pid);
      return [...shims, ...pauses];
    },
    async stop() {
      c.close();
      await stopChild(child);
      // Shims of containers that are gone exit by themselves; any left are ours to end.
      for (const p of processes().filter((q) => q.comm.startsWith('containerd-shim') && q.cmdline.includes(socket))) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 300));
      await umountUnder(dir);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** Unmounts whatever is still mounted below dir (deepest first). */
async function umountUnder(dir: string): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const targets = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((t) => t.startsWith(dir + '/'));
  for (const t of targets.sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', t]);
    } catch {
      // already gone
    }
  }
}
