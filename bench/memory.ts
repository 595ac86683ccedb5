// The daemon's resident memory, as the benchmark measures it but without the
// rest of the workload: idle (started, polled as kubelet does at start,
// nothing pulled), then with N pods (pod + busybox container) started 2 at a
// time, and what stays after they are removed. Runs tscri as bin/tscri does.
//   node bench/memory.ts [--pods N] [--runs N] [--node-flags '--flag1 --flag2']
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { removeCgroup } from '../src/cgroups/cgroups.ts';
import { makeTestNetwork } from '../test/helpers/cni.ts';
import { busyboxEntries, layer, pushImage } from '../test/helpers/images.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { median, pool } from './measure.ts';
import { rssMiB } from './procs.ts';
import { startTscri } from './runtimes.ts';
import { removeSleepPod, startSleepPod, type SleepPod } from './sleep-pods.ts';

const { values: flags } = parseArgs({
  options: { pods: { type: 'string', default: '100' }, runs: { type: 'string', default: '1' }, 'node-flags': { type: 'string', default: '' } },
});
const PODS = Number(flags.pods);
const RUNS = Number(flags.runs);
const nodeFlags = flags['node-flags'].split(/\s+/).filter(Boolean);

const POLLED = ['Version', 'Status', 'ListPodSandbox', 'ListContainers', 'ListImages', 'ImageFsInfo'];
const settle = () => new Promise((r) => setTimeout(r, 1000));

const registry = await startRegistry();
const parent = `/tscri-bench-mem-${randomBytes(3).toString('hex')}`;
const figures: Record<string, number[]> = {};
const record = (key: string, value: number) => (figures[key] ??= []).push(value);
try {
  await pushImage(registry.url, 'bench/busybox', 'v1', { layers: [await layer(busyboxEntries())], config: { Cmd: ['sh'] } });
  const image = `${registry.host}/bench/busybox:v1`;
  // Measured as the daemon runs after its first start, with Node's compile cache filled.
  const warm = await makeTestNetwork();
  try {
    await (await startTscri(warm, parent, { nodeFlags })).stop();
  } finally {
    await warm.cleanup();
  }
  for (let run = 0; run < RUNS; run++) {
    const network = await makeTestNetwork();
    try {
      const rt = await startTscri(network, parent, { nodeFlags });
      try {
        const call = rt.client.call;
        for (let i = 0; i < 3; i++) for (const rpc of POLLED) await call(rpc, {});
        await settle();
        record('idle', rssMiB(rt.pid));
        await call('PullImage', { image: { image } });
        const pods: SleepPod[] = [];
        const tag = randomBytes(3).toString('hex');
        await pool(PODS, 2, async (i) => {
          pods.push(await startSleepPod(call, image, `mem-${i}`, tag, parent));
        });
        for (let i = 0; i < 3; i++) for (const rpc of POLLED) await call(rpc, {});
        await settle();
        record(`${PODS} pods`, rssMiB(rt.pid));
        await pool(pods.length, 20, (i) => removeSleepPod(call, pods[i]!));
        await settle();
        record('after removal', rssMiB(rt.pid));
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
console.log(`daemon VmRSS, MiB (median of ${RUNS} run${RUNS === 1 ? '' : 's'})${nodeFlags.length ? `, node ${nodeFlags.join(' ')}` : ''}`);
for (const [key, xs] of Object.entries(figures))
  console.log(`${key.padEnd(16)} ${median(xs).toFixed(1).padStart(6)}   (${xs.map((x) => x.toFixed(1)).join(', ')})`);
