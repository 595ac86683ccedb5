// ListPodSandbox/ListContainers latency with many idle pods (busybox sleep),
// as kubelet relists every second: p50/p99/max in milliseconds of sequential
// calls, and the same with a call every 10 ms for a few seconds (so periodic
// work in the daemon — timers, exit checks, GC — shows in the tail).
//   node bench/relist.ts [--pods 100] [--calls 1000] [--cpu-prof DIR]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { percentile } from './measure.ts';
import { startTscri } from './runtimes.ts';
import { removeSleepPod, startSleepPod, type SleepPod } from './sleep-pods.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { busyboxEntries, layer, pushImage } from '../test/helpers/images.ts';
import { makeTestNetwork } from '../test/helpers/cni.ts';
import { removeCgroup } from '../src/cgroups/cgroups.ts';

const { values: flags } = parseArgs({ options: { pods: { type: 'string' }, calls: { type: 'string' }, 'cpu-prof': { type: 'string' } } });
const PODS = Number(flags.pods ?? 100);
const CALLS = Number(flags.calls ?? 1000);
const RPCS = ['ListPodSandbox', 'ListContainers', 'Version', 'Status', 'ListImages', 'ImageStatus', 'ContainerStatus', 'PodSandboxStatus'];

const registry = await startRegistry();
const parent = `/tscri-relist-${randomBytes(3).toString('hex')}`;
const network = await makeTestNetwork();
try {
  await pushImage(registry.url, 'bench/busybox', 'v1', { layers: [await layer(busyboxEntries())], config: { Cmd: ['sh'] } });
  const image = `${registry.host}/bench/busybox:v1`;
  const prof = flags['cpu-prof'];
  const rt = await startTscri(network, parent, prof ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${prof}`] } : {});
  const call = rt.client.call;
  const pods: SleepPod[] = [];
  try {
    await call('PullImage', { image: { image } });
    const tag = randomBytes(3).toString('hex');
    let next = 0;
    const worker = async () => {
      while (next < PODS) pods.push(await startSleepPod(call, image, `r${next++}`, tag, parent));
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    await new Promise((r) => setTimeout(r, 2000));
    const request = (rpc: string) =>
      rpc === 'ImageStatus'
        ? { image: { image } }
        : rpc === 'ContainerStatus'
          ? { container_id: pods[0]!.ctr }
          : rpc === 'PodSandboxStatus'
            ? { pod_sandbox_id: pods[0]!.pod }
            : {};
    for (let i = 0; i < 50; i++) for (const rpc of RPCS) await call(rpc, request(rpc));
    const line = (label: string, xs: number[]) =>
      console.log(`${label.padEnd(34)} p50 ${percentile(xs, 50).toFixed(2)}  p99 ${percentile(xs, 99).toFixed(2)}  max ${Math.max(...xs).toFixed(2)}`);
    console.log(`ms per call, ${PODS} pods running, ${CALLS} sequential calls each`);
    for (const rpc of RPCS) {
      const xs: number[] = [];
      for (let i = 0; i < CALLS; i++) {
        const start = performance.now();
        await call(rpc, request(rpc));
        xs.push(performance.now() - start);
      }
      line(rpc, xs);
    }
    // Paced: one relist pair every 10 ms for 12 s, across the daemon's periodic checks.
    const paced = new Map<string, number[]>();
    const until = performance.now() + 12_000;
    while (performance.now() < until) {
      for (const rpc of ['ListPodSandbox', 'ListContainers']) {
        const start = performance.now();
        await call(rpc, {});
        const xs = paced.get(rpc) ?? [];
        xs.push(performance.now() - start);
        paced.set(rpc, xs);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const [rpc, xs] of paced) line(`${rpc}, every 10 ms for 12 s`, xs);
  } finally {
    let next = 0;
    const remover = async () => {
      while (next < pods.length) {
        // Each call on its own: one that fails does not keep the others from cleaning up.
        await removeSleepPod((rpc, request) => call(rpc, request).catch(() => undefined), pods[next++]!);
      }
    };
    await Promise.all(Array.from({ length: 20 }, remover));
    await rt.stop();
  }
} finally {
  await network.cleanup();
  await registry.stop();
  await removeCgroup(parent).catch(() => undefined);
}
