// Per-call latency of the daemon's polled RPCs with and without the
// legacy :authority filter (legacy_authority), interleaved: p50 and p99 in
// microseconds of sequential calls.
//   node bench/call-latency.ts   (TSCRI_BENCH_RUNS=3, TSCRI_BENCH_CALLS=1000)
import { startDaemon } from '../test/helpers/daemon.ts';
import { percentile } from './measure.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 3);
const CALLS = Number(process.env.TSCRI_BENCH_CALLS ?? 1000);
const RPCS = ['Version', 'Status', 'ListPodSandbox', 'ListContainers', 'ListImages'];

const samples = new Map<string, number[]>();
for (let r = 0; r < RUNS; r++) {
  for (const legacy of [false, true]) {
    const d = await startDaemon({ config: `legacy_authority = ${legacy}`, extraArgs: ['--log-level', 'info'] });
    try {
      for (let i = 0; i < 100; i++) await d.call('Version', {});
      for (const rpc of RPCS) {
        const key = `${rpc} ${legacy ? 'filtered' : 'direct'}`;
        const xs = samples.get(key) ?? [];
        for (let i = 0; i < CALLS; i++) {
          const start = process.hrtime.bigint();
          await d.call(rpc, {});
          xs.push(Number(process.hrtime.bigint() - start) / 1000);
        }
        samples.set(key, xs);
      }
    } finally {
      await d.cleanup();
    }
  }
}
console.log(`µs per call, ${RUNS} runs × ${CALLS} sequential calls`);
console.log('rpc              direct p50/p99     filtered p50/p99');
for (const rpc of RPCS) {
  const d = samples.get(`${rpc} direct`)!;
  const f = samples.get(`${rpc} filtered`)!;
  console.log(
    `${rpc.padEnd(16)} ${percentile(d, 50).toFixed(0).padStart(6)}/${percentile(d, 99).toFixed(0).padEnd(8)} ${percentile(f, 50).toFixed(0).padStart(6)}/${percentile(f, 99).toFixed(0)}`,
  );
}
