// Removal benchmark: how long RemoveContainer (a stopped container that ran
// sleep) and RemoveImage (the five-layer image of the main benchmark, each
// time freshly pulled) take to answer on a fresh tscri, one call at a time.
//   node bench/remove.ts   (as root; TSCRI_BENCH_RUNS=20 by default)
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, percentile, time } from './measure.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { busyboxEntries, layer, pushImage } from '../test/helpers/images.ts';
import { removeCgroup } from '../src/cgroups/cgroups.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 20);
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-bench-remove-${tag}`;

const registry = await startRegistry();
const daemon = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n` });
const logs = await mkdtemp(join(tmpdir(), 'tscri-bench-logs-'));
try {
  const busybox = await layer(busyboxEntries());
  await pushImage(registry.url, 'bench/busybox', 'v1', { layers: [busybox], config: { Cmd: ['sh'] } });
  const layers = [busybox];
  for (let i = 0; i < 4; i++) layers.push(await layer(Array.from({ length: 50 }, (_, j) => ({ name: `data${i}/f${j}`, body: randomBytes(20_000) }))));
  await pushImage(registry.url, 'bench/multi', 'v1', { layers, config: { Cmd: ['sleep', '3600'] } });
  const container = `${registry.host}/bench/busybox:v1`;
  const multi = `${registry.host}/bench/multi:v1`;
  await daemon.call('PullImage', { image: { image: container } });

  const config = {
    metadata: { name: 'remove', namespace: 'bench', uid: `remove-${tag}`, attempt: 0 },
    log_directory: join(logs, 'remove'),
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id } = await daemon.call('RunPodSandbox', { config });
  const removeContainer: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const { container_id } = await daemon.call('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name: 'c' }, image: { image: container }, command: ['sleep', '3600'], log_path: `c${i}.log` },
      sandbox_config: config,
    });
    await daemon.call('StartContainer', { container_id });
    await daemon.call('StopContainer', { container_id, timeout: 0 });
    removeContainer.push(await time(() => daemon.call('RemoveContainer', { container_id })));
  }
  await daemon.call('StopPodSandbox', { pod_sandbox_id });
  await daemon.call('RemovePodSandbox', { pod_sandbox_id });

  const removeImage: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await daemon.call('PullImage', { image: { image: multi } });
    removeImage.push(await time(() => daemon.call('RemoveImage', { image: { image: multi } })));
  }
  const show = (name: string, xs: number[]) =>
    console.log(`  ${name.padEnd(16)} p50 ${median(xs).toFixed(1).padStart(6)} ms   p90 ${percentile(xs, 90).toFixed(1).padStart(6)} ms`);
  console.log(`removal, ${RUNS} calls each, one at a time`);
  show('RemoveContainer', removeContainer);
  show('RemoveImage', removeImage);
} finally {
  await daemon.cleanup();
  await registry.stop();
  await removeCgroup(parent).catch(() => undefined);
  await rm(logs, { recursive: true, force: true });
}
