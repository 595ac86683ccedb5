// Runs a script of test/vm/ inside the cgroup-v2-only VM (../shared/vm/run-in-vm
// beside the checkout) and returns the JSON it printed on its `RESULT ` line.
// The VM is emulated: on a loaded machine a daemon inside it has been seen
// not to start in time, and Node inside it has been seen to abort at start
// (a V8 check failing under software emulation); such a run is retried once
// on a fresh VM, and the first attempt's output is kept for the report.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** ../shared/vm/run-in-vm beside the checkout, or $RUN_IN_VM (for checkouts elsewhere, such as git worktrees). */
export const RUN_IN_VM = process.env.RUN_IN_VM || join(dirname(REPO.replace(/\/$/, '')), 'shared', 'vm', 'run-in-vm');

/** The `skip` option for tests that need the VM runner. */
export const vmSkip = existsSync(RUN_IN_VM) ? false : `no VM runner at ${RUN_IN_VM}`;

export interface VmRun {
  result?: Record<string, any>;
  /** Lines the script printed for the report (`vm: ...`), from every attempt. */
  notes: string[];
  /** Why no result came, with the tail of the output. */
  failure?: string;
}

const START_FAILED = /did not start serving|docker-registry did not start|tscri exited with|Fatal error in/;

export function runVmScript(script: string, vmArgs: string[] = []): VmRun {
  const notes: string[] = [];
  let failure: string | undefined;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const run = spawnSync(RUN_IN_VM, [...vmArgs, '--timeout', '900', '--workdir', REPO, '--', process.execPath, script], {
      encoding: 'utf8',
      timeout: 1_000_000,
    });
    const output = `${run.stdout ?? ''}\n${run.stderr ?? ''}`;
    for (const l of output.split('\n')) if (l.startsWith('vm: ')) notes.push(`attempt ${attempt}: ${l}`);
    const line = (run.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    if (line) return { result: JSON.parse(line.slice('RESULT '.length)), notes };
    failure = `no result from the VM (attempt ${attempt}, exit ${run.status}):\n${(run.stdout ?? '').slice(-3000)}\n${(run.stderr ?? '').slice(-3000)}`;
    if (!START_FAILED.test(output)) break;
    notes.push(`attempt ${attempt}: ${failure}`);
  }
  return { notes, failure };
}
