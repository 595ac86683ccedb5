// The CRI benchmark: the same workload (bench/workload.ts) over the socket
// against tscri and containerd 2.1.9, in interleaved rounds (tscri,
// containerd, tscri, containerd...) so that drifting machine load hits both,
// each round with freshly started daemons. Prints every goal's figure next
// to its target, then a CPU profile of tscri on the pod-start path.
//   npm run bench                 (as root; 5 rounds)
//   npm run bench -- --quick      (1 round, fewer iterations: a few minutes on 2 cores)
//   flags: --rounds N, --pods N, --only tscri|containerd, --no-profile, --json FILE,
//          --baseline DIR (another tscri checkout, measured as a third runtime, tscri@base)
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { median } from './measure.ts';
import { round, type Figures, type Images, type Sizes } from './workload.ts';
import { removeSleepPod, startSleepPod, type SleepPod } from './sleep-pods.ts';
import { containerdAvailable, CONTAINERD_DIR, startContainerd, startTscri, type Runtime } from './runtimes.ts';
import { summarizeProfile, type ProfileSummary } from './profile.ts';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.ts';
import { busyboxEntries, layer, pushImage } from '../test/helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../test/helpers/cni.ts';
import { removeCgroup } from '../src/cgroups/cgroups.ts';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    pods: { type: 'string' },
    only: { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    json: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const quick = flags.quick || process.env.TSCRI_BENCH_QUICK === '1';
const ROUNDS = Number(flags.rounds ?? process.env.TSCRI_BENCH_RUNS ?? (quick ? 1 : 5));
const sizes: Sizes = quick
  ? { lifecycle: 10, pulls: 3, polls: 100, pods: Number(flags.pods ?? 40) }
  : { lifecycle: 30, pulls: 5, polls: 300, pods: Number(flags.pods ?? 100) };

async function prepareImages(registry: TestRegistry): Promise<Images> {
  const busybox = await layer(busyboxEntries());
  await pushImage(registry.url, 'bench/busybox', 'v1', { layers: [busybox], config: { Cmd: ['sh'] } });
  const layers = [busybox];
  for (let i = 0; i < 4; i++) layers.push(await layer(Array.from({ length: 50 }, (_, j) => ({ name: `data${i}/f${j}`, body: randomBytes(20_000) }))));
  await pushImage(registry.url, 'bench/multi', 'v1', { layers, config: { Cmd: ['sleep', '3600'] } });
  // containerd needs a pause image for its sandboxes: catatonit does that job.
  await pushImage(registry.url, 'bench/pause', '3.10', {
    layers: [await layer([{ name: 'catatonit', body: readFileSync('/usr/bin/catatonit'), mode: 0o755 }])],
    config: { Entrypoint: ['/catatonit', '-P'], Cmd: [] },
  });
  return { container: `${registry.host}/bench/busybox:v1`, pull: `${registry.host}/bench/multi:v1`, pause: `${registry.host}/bench/pause:3.10` };
}

async function withRuntime<T>(start: (n: TestNetwork) => Promise<Runtime>, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const network = await makeTestNetwork();
  try {
    const rt = await start(network);
    try {
      return await fn(rt);
    } finally {
      await rt.stop();
    }
  } finally {
    await network.cleanup();
  }
}

/** tscri under --cpu-prof: 20 pods started one after another; the profile of that window. */
async function profilePodStart(images: Images, parent: string): Promise<{ summary: ProfileSummary; pods: number; wallMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-bench-prof-'));
  const pods = 20;
  try {
    let from = 0;
    let to = 0;
    await withRuntime(
      (n) => startTscri(n, parent, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=250'] }),
      async (rt) => {
        const call = rt.client.call;
        await call('PullImage', { image: { image: images.container } });
        const started: SleepPod[] = [];
        const tag = randomBytes(3).toString('hex');
        const one = async (i: number) => {
          started.push(await startSleepPod(call, images.container, `prof-${i}`, tag, parent));
        };
        await one(-1); // warm up
        from = Number(process.hrtime.bigint() / 1000n);
        for (let i = 0; i < pods; i++) await one(i);
        to = Number(process.hrtime.bigint() / 1000n);
        for (const p of started) await removeSleepPod(call, p);
      },
    );
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('tscri wrote no CPU profile');
    return { summary: summarizeProfile(join(dir, file), from, to), pods, wallMs: (to - from) / 1000 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- the report ----

type Goal = { label: string; key: string; unit: string; target: (c: number | undefined) => number | undefined; targetText: string };

const OPS = [
  'RunPodSandbox',
  'StopPodSandbox',
  'RemovePodSandbox',
  'CreateContainer',
  'StartContainer',
  'ContainerStatus',
  'StopContainer',
  'RemoveContainer',
  'PullImage',
  'ImageStatus',
  'RemoveImage',
  'ListImages',
  'pod + container from scratch',
];
const POLLED = ['Version', 'Status', 'ListPodSandbox', 'ListContainers', 'ListImages', 'ImageFsInfo', 'ImageStatus', 'ContainerStatus', 'PodSandboxStatus'];

function goals(pods: number): Goal[] {
  const ratio = (r: number) => (c: number | undefined) => (c === undefined ? undefined : c * r);
  const atMost = (v: number) => () => v;
  const half = Math.floor(pods / 2);
  return [
    ...OPS.map((op) => {
      const r = op === 'RunPodSandbox' || op === 'pod + container from scratch' ? 0.5 : 1;
      return { label: op, key: op, unit: 'ms', target: ratio(r), targetText: `≤ ${r.toFixed(1)}×` };
    }),
    ...POLLED.map((rpc) => ({
      label: `${rpc} (polled)`,
      key: `poll ${rpc}`,
      unit: 'ms',
      target: (c: number | undefined) => Math.min(1, c ?? 1),
      targetText: '≤ 1.0×, < 1 ms',
    })),
    { label: 'ExecSync `true` p50', key: 'ExecSync', unit: 'ms', target: ratio(1), targetText: '≤ 1.0×' },
    { label: 'CONTAINER_CREATED event after create began', key: 'CONTAINER_CREATED event', unit: 'ms', target: ratio(1), targetText: '≤ 1.0×' },
    { label: `ListPodSandbox, ${half} pods, p50`, key: `relist ListPodSandbox, ${half} pods p50`, unit: 'ms', target: ratio(1), targetText: '≤ 1.0×' },
    { label: `ListPodSandbox, ${half} pods, p99`, key: `relist ListPodSandbox, ${half} pods p99`, unit: 'ms', target: atMost(5), targetText: '≤ 5 ms' },
    { label: `ListPodSandbox, ${pods} pods, p99`, key: `relist ListPodSandbox, ${pods} pods p99`, unit: 'ms', target: atMost(5), targetText: '≤ 5 ms' },
    { label: `ListContainers, ${pods} pods, p99`, key: `relist ListContainers, ${pods} pods p99`, unit: 'ms', target: atMost(5), targetText: '≤ 5 ms' },
    { label: `${pods} pods started, 2 at a time`, key: `${pods} pods, 2 at a time`, unit: 's', target: ratio(1), targetText: '≤ 1.0×' },
    { label: `${pods} pods started, 20 at a time`, key: `${pods} pods, 20 at a time`, unit: 's', target: ratio(1), targetText: '≤ 1.0×' },
    { label: 'idle daemon RSS', key: 'idle RSS', unit: 'MiB', target: atMost(80), targetText: '≤ 80 MiB' },
    { label: `daemon RSS with ${pods} pods`, key: `RSS with ${pods} pods`, unit: 'MiB', target: atMost(120), targetText: '≤ 120 MiB' },
    { label: 'per-pod PSS (monitor + pause/infra)', key: 'per-pod PSS', unit: 'MiB', target: ratio(0.15), targetText: '≤ 0.15×' },
  ];
}

const INFO = (pods: number) => [`RSS of daemon + monitors, ${pods} pods`, 'daemon CPU per pod start, 2 at a time', 'daemon CPU per pod start, 20 at a time'];

function fmt(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return '—';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function report(results: Record<string, Figures[]>, profile: Awaited<ReturnType<typeof profilePodStart>> | undefined): string {
  const med = (name: string, key: string) => {
    const xs = (results[name] ?? []).map((f) => f[key]).filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return xs.length ? median(xs) : undefined;
  };
  const lines: string[] = [];
  const rounds = Math.max(...Object.values(results).map((r) => r.length), 0);
  lines.push(
    `${rounds} interleaved round(s), medians over rounds of each round's median (p50/p99 where named); containerd ${containerdAvailable() ? '2.1.9' : 'absent'}; lower is better.`,
    '',
  );
  const base = results['tscri@base'] ? (key: string) => ` ${fmt(med('tscri@base', key))} |` : () => '';
  lines.push(
    `| measure | containerd 2.1.9 |${results['tscri@base'] ? ' tscri@base |' : ''} tscri | ratio | target | met |`,
    `| --- | --- |${results['tscri@base'] ? ' --- |' : ''} --- | --- | --- | --- |`,
  );
  let met = 0;
  let all = 0;
  for (const g of goals(sizes.pods)) {
    const t = med('tscri', g.key);
    const c = med('containerd', g.key);
    const target = g.target(c);
    const ok = t !== undefined && target !== undefined ? t <= target : undefined;
    if (ok !== undefined) {
      all++;
      if (ok) met++;
    }
    const r = c ?? med('tscri@base', g.key);
    lines.push(
      `| ${g.label} (${g.unit}) | ${fmt(c)} |${base(g.key)} ${fmt(t)} | ${t !== undefined && r ? (t / r).toFixed(2) : '—'} | ${g.targetText} | ${ok === undefined ? '—' : ok ? 'yes' : '**no**'} |`,
    );
  }
  for (const key of INFO(sizes.pods)) {
    const t = med('tscri', key);
    const c = med('containerd', key);
    const r = c ?? med('tscri@base', key);
    lines.push(
      `| ${key} (${key.startsWith('RSS') ? 'MiB' : 'ms'}) | ${fmt(c)} |${base(key)} ${fmt(t)} | ${t !== undefined && r ? (t / r).toFixed(2) : '—'} | (info) | |`,
    );
  }
  lines.push('', `${met} of ${all} goals met.`);
  if (profile) {
    const { summary, pods, wallMs } = profile;
    lines.push(
      '',
      `tscri CPU profile, ${pods} pods + containers started one after another: ${(wallMs / pods).toFixed(0)} ms wall and ${(summary.busyMs / pods).toFixed(1)} ms of the daemon's JavaScript thread per pod (the rest is runc, conmon, CNI plugins and the kernel).`,
      '',
    );
    lines.push(
      '| area | ms per pod | | function (self) | ms per pod | | tscri function (total) | ms per pod |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (let i = 0; i < Math.max(summary.areas.length, summary.self.length); i++) {
      const a = summary.areas[i];
      const s = summary.self[i];
      const t = summary.total[i];
      const cell = (x: [string, number] | undefined) => (x ? `${x[0].replace(/\|/g, '\\|')} | ${(x[1] / pods).toFixed(2)}` : ' | ');
      lines.push(`| ${cell(a)} | | ${cell(s)} | | ${cell(t)} |`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (namespaces, mounts, cgroups)');
  const registry = await startRegistry();
  const parent = `/tscri-bench-${randomBytes(3).toString('hex')}`;
  const results: Record<string, Figures[]> = {};
  let profile: Awaited<ReturnType<typeof profilePodStart>> | undefined;
  try {
    const images = await prepareImages(registry);
    const runtimes: Array<[string, (n: TestNetwork) => Promise<Runtime>]> = [];
    if (flags.baseline) runtimes.push(['tscri@base', (n) => startTscri(n, parent, { checkout: flags.baseline, name: 'tscri@base' })]);
    if (flags.only !== 'containerd') runtimes.push(['tscri', (n) => startTscri(n, parent)]);
    if (flags.only !== 'tscri') {
      if (containerdAvailable()) runtimes.push(['containerd', (n) => startContainerd(n, registry, images.pause)]);
      else process.stderr.write(`containerd 2.1.9 is not unpacked in ${CONTAINERD_DIR} (see ../shared/anchors/README.md): measuring tscri only\n`);
    }
    // A daemon as it runs after its first start: the first start after a change of the code
    // strips its TypeScript and fills Node's compile cache (bin/tscri keeps it), which would
    // otherwise land in round 1 only.
    for (const [name, start] of runtimes) if (name.startsWith('tscri')) await withRuntime(start, async () => undefined);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, start] of runtimes) {
        const began = Date.now();
        const figures = await withRuntime(start, (rt) => round(rt, images, parent, sizes));
        (results[name] ??= []).push(figures);
        process.stderr.write(`round ${r + 1}/${ROUNDS} ${name}: ${((Date.now() - began) / 1000).toFixed(0)} s\n`);
      }
    }
    if (!flags['no-profile'] && flags.only !== 'containerd') {
      process.stderr.write('profiling tscri on the pod-start path…\n');
      profile = await profilePodStart(images, parent);
    }
  } finally {
    await registry.stop();
    await removeCgroup(parent).catch(() => undefined);
  }
  if (flags.json) await writeFile(flags.json, JSON.stringify({ sizes, rounds: ROUNDS, results, profile }, null, 1));
  process.stdout.write(`${report(results, profile)}\n`);
}

await main();
