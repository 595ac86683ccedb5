// One round of the CRI workload against one runtime: the per-operation
// lifecycle (as critest's benchmark specs run it, 2 in parallel), the calls
// kubelet makes in a loop, ExecSync, the CONTAINER_CREATED event, 100 pods
// started 2 and 20 at a time, and memory. Returns one figure per measure.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, percentile, pool } from './measure.ts';
import { cpuMs, pssMiB, rssMiB } from './procs.ts';
import type { Runtime } from './runtimes.ts';
import { podConfig as sleepPodConfig, sleepContainer, type SleepPod } from './sleep-pods.ts';

export interface Images {
  /** The image containers run (busybox). */
  container: string;
  /** A five-layer image for the pull measures. */
  pull: string;
  /** containerd's sandbox image. */
  pause: string;
}

export interface Sizes {
  /** Iterations of the pod/container lifecycle. */
  lifecycle: number;
  /** Cold pulls. */
  pulls: number;
  /** Calls per polled RPC. */
  polls: number;
  /** Pods of the scale measures. */
  pods: number;
}

export type Figures = Record<string, number>;

const now = () => performance.now();

async function timed<T>(samples: Map<string, number[]>, name: string, fn: () => Promise<T>): Promise<T> {
  const start = now();
  const value = await fn();
  const list = samples.get(name) ?? [];
  list.push(now() - start);
  samples.set(name, list);
  return value;
}

export async function round(rt: Runtime, images: Images, cgroupParent: string, sizes: Sizes): Promise<Figures> {
  const call = rt.client.call;
  const logs = await mkdtemp(join(tmpdir(), 'tscri-bench-logs-'));
  const tag = randomBytes(3).toString('hex');
  let seq = 0;
  const podConfig = (prefix: string) => {
    const name = `${prefix}-${seq++}`;
    return sleepPodConfig(name, tag, cgroupParent, join(logs, name));
  };
  const ctrConfig = (name = 'c') => sleepContainer(images.container, name, `${name}.log`);
  const samples = new Map<string, number[]>();
  const figures: Figures = {};

  const startPod = async (prefix: string, s = samples): Promise<SleepPod> => {
    const config = podConfig(prefix);
    const { pod_sandbox_id } = await timed(s, 'RunPodSandbox', () => call('RunPodSandbox', { config }));
    const { container_id } = await timed(s, 'CreateContainer', () => call('CreateContainer', { pod_sandbox_id, config: ctrConfig(), sandbox_config: config }));
    await timed(s, 'StartContainer', () => call('StartContainer', { container_id }));
    return { pod: pod_sandbox_id, ctr: container_id, config };
  };
  const removePod = async (p: SleepPod, s = samples): Promise<void> => {
    await timed(s, 'StopContainer', () => call('StopContainer', { container_id: p.ctr, timeout: 0 }));
    await timed(s, 'RemoveContainer', () => call('RemoveContainer', { container_id: p.ctr }));
    await timed(s, 'StopPodSandbox', () => call('StopPodSandbox', { pod_sandbox_id: p.pod }));
    await timed(s, 'RemovePodSandbox', () => call('RemovePodSandbox', { pod_sandbox_id: p.pod }));
  };
  const scratch = new Map<string, number[]>();

  try {
    // Idle: started and polled as kubelet does at start, nothing pulled or run yet.
    for (let i = 0; i < 3; i++) for (const rpc of ['Version', 'Status', 'ListPodSandbox', 'ListContainers', 'ListImages', 'ImageFsInfo']) await call(rpc, {});
    await new Promise((r) => setTimeout(r, 1000));
    figures['idle RSS'] = rssMiB(rt.pid);
    await call('PullImage', { image: { image: images.container } });
    if (rt.name === 'containerd') await call('PullImage', { image: { image: images.pause } });

    // Images: cold pull, status, list, remove.
    for (let i = 0; i < sizes.pulls; i++) {
      const present = await call('ImageStatus', { image: { image: images.pull } });
      if (present.image) await timed(samples, 'RemoveImage', () => call('RemoveImage', { image: { image: images.pull } }));
      await timed(samples, 'PullImage', () => call('PullImage', { image: { image: images.pull } }));
      for (let j = 0; j < 5; j++) {
        await timed(samples, 'ImageStatus', () => call('ImageStatus', { image: { image: images.pull } }));
        await timed(samples, 'ListImages', () => call('ListImages', {}));
      }
    }
    if ((samples.get('RemoveImage')?.length ?? 0) < sizes.pulls)
      await timed(samples, 'RemoveImage', () => call('RemoveImage', { image: { image: images.pull } }));

    // The lifecycle, one call at a time per worker, 2 workers (critest's benchmark default).
    await pool(sizes.lifecycle, 2, async () => {
      const start = now();
      const p = await startPod('life');
      timedValue(samples, 'pod + container from scratch', now() - start);
      for (let j = 0; j < 3; j++) await timed(samples, 'ContainerStatus', () => call('ContainerStatus', { container_id: p.ctr }));
      await timed(samples, 'PodSandboxStatus', () => call('PodSandboxStatus', { pod_sandbox_id: p.pod }));
      await removePod(p);
    });

    // What kubelet polls, with 5 pods running; ExecSync; the CONTAINER_CREATED event.
    const five: SleepPod[] = [];
    for (let i = 0; i < 5; i++) five.push(await startPod('poll', scratch));
    const polled: Array<[string, object]> = [
      ['Version', {}],
      ['Status', {}],
      ['ListPodSandbox', {}],
      ['ListContainers', {}],
      ['ListImages', {}],
      ['ImageFsInfo', {}],
      ['ImageStatus', { image: { image: images.container } }],
      ['ContainerStatus', { container_id: five[0]!.ctr }],
      ['PodSandboxStatus', { pod_sandbox_id: five[0]!.pod }],
    ];
    for (let i = 0; i < sizes.polls; i++) for (const [rpc, req] of polled) await timed(samples, `poll ${rpc}`, () => call(rpc, req));
    for (let i = 0; i < 30; i++) await timed(samples, 'ExecSync', () => call('ExecSync', { container_id: five[0]!.ctr, cmd: ['true'], timeout: 10 }));

    const arrived = new Map<string, number>();
    const waiting = new Map<string, () => void>();
    const unsubscribe = rt.client.events((e) => {
      if (e.container_event_type !== 'CONTAINER_CREATED_EVENT' || arrived.has(e.container_id)) return;
      arrived.set(e.container_id, now());
      waiting.get(e.container_id)?.();
    });
    await new Promise((r) => setTimeout(r, 300));
    try {
      for (let i = 0; i < 10; i++) {
        const target = five[i % five.length]!;
        const start = now();
        const { container_id } = await call('CreateContainer', { pod_sandbox_id: target.pod, config: ctrConfig(`ev${i}`), sandbox_config: target.config });
        if (!arrived.has(container_id)) {
          await Promise.race([new Promise<void>((r) => waiting.set(container_id, r)), new Promise((r) => setTimeout(r, 5000))]);
        }
        timedValue(samples, 'CONTAINER_CREATED event', (arrived.get(container_id) ?? NaN) - start);
        await call('RemoveContainer', { container_id });
      }
    } finally {
      unsubscribe();
    }
    for (const p of five) await removePod(p, scratch);

    // Scale: 100 pods 2 at a time (kubelet's pod workers), relists at 100 and 50 pods, memory; then 20 at a time.
    for (const parallel of [2, 20]) {
      const pods: SleepPod[] = [];
      const cpuBefore = cpuMs(rt.pid);
      const start = now();
      await pool(sizes.pods, parallel, async () => void pods.push(await startPod(`scale${parallel}`, scratch)));
      figures[`${sizes.pods} pods, ${parallel} at a time`] = (now() - start) / 1000;
      figures[`daemon CPU per pod start, ${parallel} at a time`] = (cpuMs(rt.pid) - cpuBefore) / sizes.pods;
      if (parallel === 2) {
        await new Promise((r) => setTimeout(r, 1000));
        figures[`RSS with ${sizes.pods} pods`] = rssMiB(rt.pid);
        const monitors = rt.monitors();
        const monitorPss = monitors.reduce((sum, pid) => sum + pssMiB(pid), 0);
        figures['per-pod PSS'] = monitorPss / sizes.pods;
        figures[`RSS of daemon + monitors, ${sizes.pods} pods`] = rssMiB(rt.pid) + monitors.reduce((sum, pid) => sum + rssMiB(pid), 0);
        await relist(call, samples, `${sizes.pods} pods`, sizes.polls);
        const half = pods.splice(0, pods.length - Math.floor(sizes.pods / 2));
        await pool(half.length, 20, async (i) => removePod(half[i]!, scratch));
        await relist(call, samples, `${pods.length} pods`, sizes.polls);
      }
      await pool(pods.length, 20, async (i) => removePod(pods[i]!, scratch));
    }
  } finally {
    await rm(logs, { recursive: true, force: true }).catch(() => undefined);
  }

  for (const [name, xs] of samples) {
    if (name.startsWith('relist ')) {
      figures[`${name} p50`] = percentile(xs, 50);
      figures[`${name} p99`] = percentile(xs, 99);
    } else figures[name] = median(xs.filter((x) => !Number.isNaN(x)));
  }
  return figures;
}

function timedValue(samples: Map<string, number[]>, name: string, ms: number): void {
  const list = samples.get(name) ?? [];
  list.push(ms);
  samples.set(name, list);
}

async function relist(call: Runtime['client']['call'], samples: Map<string, number[]>, label: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (const rpc of ['ListPodSandbox', 'ListContainers']) {
      const start = now();
      await call(rpc, {});
      timedValue(samples, `relist ${rpc}, ${label}`, now() - start);
    }
  }
}
