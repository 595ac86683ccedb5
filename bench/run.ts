// The CRI benchmark: the same workload over the socket against tscri and,
// when Debian's containerd is installed, against containerd's CRI plugin
// (started here with its own root, state and socket). Prints a table of
// medians and the tscri/containerd ratio.
//   npm run bench            (as root; TSCRI_BENCH_RUNS=5 by default)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { median, time as ms } from './measure.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { criClient, type CriCall } from '../test/helpers/cri-client.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { busyboxEntries, layer, pushImage } from '../test/helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../test/helpers/cni.ts';
import { removeCgroup } from '../src/cgroups/cgroups.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 5);
const CONTAINERD = '/usr/bin/containerd';

interface Runtime {
  name: string;
  call: CriCall;
  pid: number;
  stop(): Promise<void>;
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function prepareImages(registry: TestRegistry): Promise<{ image: string; pause: string }> {
  // A multi-layer image: busybox plus four layers of files.
  const layers = [await layer(busyboxEntries())];
  for (let i = 0; i < 4; i++) layers.push(await layer(Array.from({ length: 50 }, (_, j) => ({ name: `data${i}/f${j}`, body: randomBytes(20_000) }))));
  await pushImage(registry.url, 'bench/multi', 'v1', { layers, config: { Cmd: ['sleep', '3600'] } });
  // containerd needs a pause image for its sandboxes: catatonit does that job.
  await pushImage(registry.url, 'bench/pause', '3.6', { layers: [await layer([{ name: 'catatonit', body: readFileSync('/usr/bin/catatonit'), mode: 0o755 }])], config: { Entrypoint: ['/catatonit', '-P'], Cmd: [] } });
  return { image: `${registry.host}/bench/multi:v1`, pause: `${registry.host}/bench/pause:3.6` };
}

async function startTscri(network: TestNetwork, parent: string): Promise<Runtime> {
  const d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n${network.toml}`, extraArgs: ['--log-level', 'info'] });
  return { name: 'tscri', call: d.call, pid: d.process.pid!, stop: () => d.cleanup() };
}

async function startContainerd(network: TestNetwork, registry: TestRegistry, pause: string): Promise<Runtime> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-bench-containerd-'));
  const socket = join(dir, 'containerd.sock');
  await mkdir(join(dir, 'certs.d', registry.host), { recursive: true });
  await writeFile(join(dir, 'certs.d', registry.host, 'hosts.toml'), `server = "http://${registry.host}"\n[host."http://${registry.host}"]\n  capabilities = ["pull", "resolve"]\n`);
  await writeFile(join(dir, 'config.toml'), [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    '[grpc]',
    `  address = "${socket}"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${pause}"`,
    '  restrict_oom_score_adj = true',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    '    bin_dir = "/usr/lib/cni"',
    `    conf_dir = "${network.confDir}"`,
    '  [plugins."io.containerd.grpc.v1.cri".registry]',
    `    config_path = "${dir}/certs.d"`,
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '',
  ].join('\n'));
  const child: ChildProcess = spawn(CONTAINERD, ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const client = criClient(socket);
  for (let i = 0; ; i++) {
    if (existsSync(socket) && (await client.call('Version', {}, { timeoutMs: 1000 }).then(() => true, () => false))) break;
    if (i > 300 || child.exitCode !== null) throw new Error(`containerd did not start: ${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'containerd',
    call: client.call,
    pid: child.pid!,
    async stop() {
      client.close();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      await new Promise((r) => setTimeout(r, 500));
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

async function runPod(rt: Runtime, image: string, name: string, parent: string): Promise<{ pod: string; ctr: string }> {
  const config = { metadata: { name, namespace: 'bench', uid: `${name}-${randomBytes(3).toString('hex')}`, attempt: 0 }, linux: { cgroup_parent: `${parent}/${name}` } };
  const { pod_sandbox_id } = await rt.call('RunPodSandbox', { config });
  const { container_id } = await rt.call('CreateContainer', { pod_sandbox_id, config: { metadata: { name: 'c' }, image: { image }, command: ['sleep', '3600'] }, sandbox_config: config });
  await rt.call('StartContainer', { container_id });
  return { pod: pod_sandbox_id, ctr: container_id };
}

async function removePod(rt: Runtime, p: { pod: string; ctr: string }): Promise<void> {
  await rt.call('StopContainer', { container_id: p.ctr, timeout: 0 });
  await rt.call('RemoveContainer', { container_id: p.ctr });
  await rt.call('StopPodSandbox', { pod_sandbox_id: p.pod });
  await rt.call('RemovePodSandbox', { pod_sandbox_id: p.pod });
}

async function workload(rt: Runtime, image: string, parent: string): Promise<Record<string, number>> {
  const pull: number[] = [];
  const warmPull: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const { image_ref } = await rt.call('PullImage', { image: { image } }).catch(async () => ({ image_ref: image }));
    await rt.call('RemoveImage', { image: { image: image_ref } });
    pull.push(await ms(() => rt.call('PullImage', { image: { image } })));
    warmPull.push(await ms(() => rt.call('PullImage', { image: { image } })));
  }
  const start: number[] = [];
  const exec: number[] = [];
  const teardown: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let p!: { pod: string; ctr: string };
    start.push(await ms(async () => (p = await runPod(rt, image, `run${i}`, parent))));
    for (let j = 0; j < 10; j++) exec.push(await ms(() => rt.call('ExecSync', { container_id: p.ctr, cmd: ['true'], timeout: 10 })));
    teardown.push(await ms(() => removePod(rt, p)));
  }
  const parallel: number[] = [];
  for (let i = 0; i < Math.max(1, Math.floor(RUNS / 2)); i++) {
    let pods: Array<{ pod: string; ctr: string }> = [];
    parallel.push(await ms(async () => (pods = await Promise.all(Array.from({ length: 20 }, (_, j) => runPod(rt, image, `par${i}-${j}`, parent))))));
    await Promise.all(pods.map((p) => removePod(rt, p)));
  }
  const fifty: Array<{ pod: string; ctr: string }> = [];
  for (let i = 0; i < 50; i++) fifty.push(await runPod(rt, image, `rss${i}`, parent));
  const rss = rssMiB(rt.pid);
  for (const p of fifty) await removePod(rt, p);
  return {
    'pull, cold (ms)': median(pull),
    'pull, layers present (ms)': median(warmPull),
    'pod + container to Running (ms)': median(start),
    'ExecSync `true` (ms)': median(exec),
    'stop + remove pod (ms)': median(teardown),
    '20 pods in parallel (ms)': median(parallel),
    'daemon RSS with 50 pods (MiB)': rss,
  };
}

async function main(): Promise<void> {
  const registry = await startRegistry();
  const parent = `/tscri-bench-${randomBytes(3).toString('hex')}`;
  const results: Record<string, Record<string, number>> = {};
  try {
    const { image, pause } = await prepareImages(registry);
    const runtimes: Array<(n: TestNetwork) => Promise<Runtime>> = [(n) => startTscri(n, parent)];
    if (existsSync(CONTAINERD)) runtimes.push((n) => startContainerd(n, registry, pause));
    else process.stderr.write(`${CONTAINERD} is not installed (apt-get install containerd): measuring tscri only\n`);
    for (const start of runtimes) {
      const network = await makeTestNetwork();
      try {
        const rt = await start(network);
        try {
          process.stderr.write(`measuring ${rt.name}…\n`);
          results[rt.name] = await workload(rt, image, parent);
        } finally {
          await rt.stop();
        }
      } finally {
        await network.cleanup();
      }
    }
  } finally {
    await registry.stop();
    await removeCgroup(parent).catch(() => undefined);
  }
  const names = Object.keys(results.tscri ?? {});
  const rows = names.map((metric) => {
    const t = results.tscri![metric]!;
    const c = results.containerd?.[metric];
    return `| ${metric} | ${t.toFixed(1)} | ${c === undefined ? '—' : c.toFixed(1)} | ${c === undefined ? '—' : (t / c).toFixed(2)} |`;
  });
  process.stdout.write(`Medians of ${RUNS} runs; lower is better.\n\n| measure | tscri | containerd | tscri/containerd |\n| --- | --- | --- | --- |\n${rows.join('\n')}\n`);
}

await main();
