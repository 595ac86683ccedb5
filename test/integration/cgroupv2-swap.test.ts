// cgroup v2 and swap, for real: the suite runs test/vm/cgroupv2-swap.ts in a
// VM with cgroup v2 only and swap on (../shared/vm/run-in-vm) and checks
// memory.max, memory.swap.max, cpu.max, cpu.weight and pids.max of the
// containers for kubelet's NoSwap and LimitedSwap settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN_IN_VM = join(dirname(REPO.replace(/\/$/, '')), 'shared', 'vm', 'run-in-vm');
const SCRIPT = fileURLToPath(new URL('../vm/cgroupv2-swap.ts', import.meta.url));
const MiB = 1024 * 1024;

test('NoSwap and LimitedSwap land in cgroup v2 files; swap is used up to the limit', { skip: existsSync(RUN_IN_VM) ? false : `no VM runner at ${RUN_IN_VM}` }, (t) => {
  const result = spawnSync(RUN_IN_VM, ['--mem', '2G', '--swap', '512M', '--timeout', '900', '--workdir', REPO, '--', process.execPath, SCRIPT], { encoding: 'utf8', timeout: 1_000_000 });
  for (const l of `${result.stdout}\n${result.stderr}`.split('\n')) if (l.startsWith('vm: ')) t.diagnostic(l);
  const line = result.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result from the VM (exit ${result.status}):\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
  const r = JSON.parse(line!.slice('RESULT '.length));
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.noSwap, { 'memory.max': String(64 * MiB), 'memory.swap.max': '0', 'cpu.max': '50000 100000', 'cpu.weight': '20', 'pids.max': 'max' });
  assert.equal(r.limitedSwap['memory.swap.max'], String(32 * MiB));
  assert.equal(r.limitedSwap['memory.max'], String(64 * MiB));
  // memory_swap_limit_in_bytes counts memory + swap: 128 MiB total means 64 MiB of swap.
  assert.equal(r.swapLimitField['memory.swap.max'], String(64 * MiB));
  assert.ok(r.hogSwapCurrent > 0, `memory beyond memory.max went to swap (swap.current ${r.hogSwapCurrent})`);
  assert.equal(r.hogState, 'CONTAINER_RUNNING');
});
