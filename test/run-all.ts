// The whole test suite after the type check and lint: unit and integration tests
// (node's test runner), then critest (test/critest/run.ts). The output of each goes
// through as it comes; the last line sums both up, so a CI log ends with the counts.
// Test files given as arguments replace the default globs.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Run {
  code: number;
  /** The last lines printed, kept for the summary. */
  tail: string[];
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const tail: string[] = [];
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      tail.push(...lines);
      if (tail.length > 400) tail.splice(0, tail.length - 400);
    });
    child.on('close', (code) => resolve({ code: code ?? 1, tail: partial ? [...tail, partial] : tail }));
  });
}

/** A figure of the test runner's summary ("ℹ pass 519"). */
function count(tail: string[], name: string): string {
  const line = tail.findLast((l) => l.startsWith(`ℹ ${name} `));
  return line ? line.slice(`ℹ ${name} `.length).trim() : '?';
}

/**
 * The cgroups named tscri* at the top of each hierarchy: tests and critest make theirs
 * there and must remove them, so one that appears during the run is a leak.
 */
function tscriCgroups(): Set<string> {
  const found = new Set<string>();
  const hierarchies = readdirSync('/sys/fs/cgroup', { withFileTypes: true }).filter((e) => e.isDirectory());
  const roots = ['/sys/fs/cgroup', ...hierarchies.map((h) => `/sys/fs/cgroup/${h.name}`)];
  for (const root of roots) {
    for (const e of readdirSync(root, { withFileTypes: true })) if (e.isDirectory() && e.name.startsWith('tscri')) found.add(`${root}/${e.name}`);
  }
  return found;
}

/** The temporary directories named tscri-*: each test removes the ones it makes. */
function tscriTempDirs(): Set<string> {
  return new Set(
    readdirSync(tmpdir())
      .filter((name) => name.startsWith('tscri-'))
      .map((name) => join(tmpdir(), name)),
  );
}

const cgroupsBefore = tscriCgroups();
const tempBefore = tscriTempDirs();
const files = process.argv.length > 2 ? process.argv.slice(2) : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'];
const tests = await run(['--test', '--test-concurrency=1', ...files]);
const critest = await run(['test/critest/run.ts']);
const critestLine = critest.tail.findLast((l) => l.startsWith('critest:')) ?? 'critest: no result';
const leaked = [...tscriCgroups()].filter((c) => !cgroupsBefore.has(c));
if (leaked.length) console.log(`cgroups left behind by the run: ${leaked.join(' ')}`);
const leftDirs = [...tscriTempDirs()].filter((d) => !tempBefore.has(d));
if (leftDirs.length) console.log(`temporary directories left behind by the run: ${leftDirs.join(' ')}`);
const ok = tests.code === 0 && critest.code === 0 && !leaked.length && !leftDirs.length;
console.log(
  `suite: ${ok ? 'PASS' : 'FAIL'} — ${leaked.length ? `${leaked.length} cgroups left behind; ` : ''}${leftDirs.length ? `${leftDirs.length} temporary directories left behind; ` : ''}tests: ${count(tests.tail, 'pass')} passed, ${count(tests.tail, 'fail')} failed, ${count(tests.tail, 'skipped')} skipped; ${critestLine}`,
);
process.exitCode = ok ? 0 : 1;
