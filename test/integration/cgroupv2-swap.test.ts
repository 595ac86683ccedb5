// cgroup v2 and swap, for real: the suite runs test/vm/cgroupv2-swap.ts in a
// VM with cgroup v2 only and swap on (../shared/vm/run-in-vm) and checks
// memory.max, memory.swap.max, cpu.max, cpu.weight and pids.max of the
// containers for kubelet's NoSwap and LimitedSwap settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runVmScript, vmSkip } from '../helpers/vm.ts';

const SCRIPT = fileURLToPath(new URL('../vm/cgroupv2-swap.ts', import.meta.url));
const MiB = 1024 * 1024;

test('NoSwap and LimitedSwap land in cgroup v2 files; swap is used up to the limit', { skip: vmSkip }, (t) => {
  const run = runVmScript(SCRIPT, ['--mem', '2G', '--swap', '512M']);
  for (const note of run.notes) t.diagnostic(note);
  assert.ok(run.result, run.failure);
  const r = run.result!;
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.noSwap, { 'memory.max': String(64 * MiB), 'memory.swap.max': '0', 'cpu.max': '50000 100000', 'cpu.weight': '20', 'pids.max': 'max' });
  assert.equal(r.limitedSwap['memory.swap.max'], String(32 * MiB));
  assert.equal(r.limitedSwap['memory.max'], String(64 * MiB));
  // memory_swap_limit_in_bytes counts memory + swap: 128 MiB total means 64 MiB of swap.
  assert.equal(r.swapLimitField['memory.swap.max'], String(64 * MiB));
  assert.ok(r.hogSwapCurrent > 0, `memory beyond memory.max went to swap (swap.current ${r.hogSwapCurrent})`);
  assert.equal(r.hogState, 'CONTAINER_RUNNING');
});
