// Pull benchmark: a multi-layer image from a loopback docker-registry into
// a fresh tscri, cold (nothing present), warm (every layer already present,
// only manifest and config fetched) and again once the image exists.
//   node bench/pull.ts   (as root; TSCRI_BENCH_RUNS=3, TSCRI_BENCH_LAYER_MIB=8 by default)
import { randomBytes } from 'node:crypto';
import { median, time } from './measure.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { busyboxEntries, layer, pushImage, type Layer } from '../test/helpers/images.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 3);
const LAYER_MIB = Number(process.env.TSCRI_BENCH_LAYER_MIB ?? 8);
const LAYERS = 5;

const registry = await startRegistry();
const daemon = await startDaemon();
try {
  // Layers of random files (incompressible, so the transfer is real) on top of busybox.
  const layers: Layer[] = [await layer(busyboxEntries(), 'gzip')];
  for (let i = 1; i < LAYERS; i++) {
    const files = Array.from({ length: 8 }, (_, j) => ({ name: `data/l${i}/f${j}`, body: randomBytes((LAYER_MIB * 1024 * 1024) / 8) }));
    layers.push(
      await layer([{ name: 'data/', type: 'directory' as const }, { name: `data/l${i}/`, type: 'directory' as const }, ...files], i % 2 ? 'gzip' : 'zstd'),
    );
  }
  const bytes = layers.reduce((n, l) => n + l.blob.length, 0);
  const cold: number[] = [];
  const warm: number[] = [];
  const present: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    // A distinct config per run makes a distinct image over the same layers.
    const a = `${registry.host}/bench/pull:a${run}`;
    const b = `${registry.host}/bench/pull:b${run}`;
    await pushImage(registry.url, 'bench/pull', `a${run}`, { layers, config: { Env: [`RUN=${run}`, 'SIDE=a'] } });
    await pushImage(registry.url, 'bench/pull', `b${run}`, { layers, config: { Env: [`RUN=${run}`, 'SIDE=b'] } });
    cold.push(await time(() => daemon.call('PullImage', { image: { image: a } })));
    warm.push(await time(() => daemon.call('PullImage', { image: { image: b } })));
    present.push(await time(() => daemon.call('PullImage', { image: { image: a } })));
    for (const ref of [a, b]) await daemon.call('RemoveImage', { image: { image: ref } });
  }
  const mib = bytes / 1024 / 1024;
  console.log(`pull of ${LAYERS} layers, ${mib.toFixed(1)} MiB compressed, from a loopback docker-registry (median of ${RUNS})`);
  console.log(`  cold (nothing present)          ${median(cold).toFixed(0).padStart(7)} ms  (${(mib / (median(cold) / 1000)).toFixed(0)} MiB/s)`);
  console.log(`  warm (layers already unpacked)  ${median(warm).toFixed(0).padStart(7)} ms`);
  console.log(`  again (image already present)   ${median(present).toFixed(0).padStart(7)} ms`);
} finally {
  await daemon.cleanup();
  await registry.stop();
}
