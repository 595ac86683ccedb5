// Runs critest, the CRI validation suite of cri-tools (what containerd and
// CRI-O run in their CI), against a tscri daemon of its own, and fails when
// any spec fails but the one that no offline setup can pass.
//
//   node test/critest/run.ts [critest flags, e.g. -ginkgo.focus REGEX]
//
// critest is looked up on PATH, then in /opt/cri-tools/bin; without it this
// prints that it skipped and exits 0. Its images come from the offline
// stand-ins of ../shared/testbed beside the checkout (TSCRI_SHARED overrides
// that directory): built once with its build-images (then kept in
// /var/lib/testbed-registry), served by its loopback registries (started here
// when they are not up, and stopped again afterwards) and reached through
// hosts.toml mirrors. Without a testbed the images are pulled from their
// upstream registries. The pods get a private bridge network. The last line
// printed holds the counts.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const SHARED = process.env.TSCRI_SHARED ?? join(dirname(REPO), 'shared');
const TESTBED = join(SHARED, 'testbed');
const TESTBED_ROOT = process.env.TESTBED_ROOT ?? '/var/lib/testbed-registry';
const FALLBACK_DIR = '/opt/cri-tools/bin';
/** critest pins this image by an upstream digest that no stand-in can have, so offline it always fails. */
export const PINNED_DIGEST_SPEC = '[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]';
/** More than the ~3 minutes a run takes on 2 cores, far less than the CI's budget. */
const RUN_TIMEOUT_MS = 20 * 60_000;

interface SpecReport {
  ContainerHierarchyTexts: string[] | null;
  LeafNodeText: string;
  LeafNodeType: string;
  State: string;
  Failure?: { Message?: string };
}

export interface Outcome {
  passed: string[];
  failed: Array<{ name: string; message: string }>;
  /** Specs that skipped themselves, with their reason. */
  skipped: Array<{ name: string; reason: string }>;
  /** Specs left out by critest's own filter (the benchmarks) or a -ginkgo.focus/skip given. */
  filtered: number;
}

export function specName(s: Pick<SpecReport, 'ContainerHierarchyTexts' | 'LeafNodeText'>): string {
  return [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' ');
}

/** Sorts ginkgo's JSON report into passed, failed, self-skipped and filtered specs. */
export function outcomeOf(report: Array<{ SpecReports: SpecReport[] | null }>): Outcome {
  const outcome: Outcome = { passed: [], failed: [], skipped: [], filtered: 0 };
  for (const suite of report) {
    for (const s of suite.SpecReports ?? []) {
      if (s.LeafNodeType !== 'It') continue;
      const name = specName(s);
      const message = (s.Failure?.Message ?? '').trim();
      if (s.State === 'passed') outcome.passed.push(name);
      else if (s.State === 'skipped' && message) outcome.skipped.push({ name, reason: message.split('\n')[0]! });
      else if (s.State === 'skipped' || s.State === 'pending') outcome.filtered++;
      else outcome.failed.push({ name, message: message || s.State });
    }
  }
  return outcome;
}

function findCritest(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), FALLBACK_DIR]) {
    const file = join(dir, 'critest');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(file: string, args: string[] = []): void {
  const r = spawnSync(file, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

interface Images {
  /** A [registry] table for the daemon. */
  toml: string;
  note: string;
  stop(): Promise<void>;
}

/** The testbed's registries with every image critest pulls, and hosts.toml mirrors to them. */
async function testbedImages(): Promise<Images> {
  const wasUp = existsSync(join(TESTBED, 'registry-up')) && spawnSync(join(TESTBED, 'registry-up'), ['--status'], { stdio: 'ignore' }).status === 0;
  if (!existsSync(join(TESTBED_ROOT, 'images.tsv'))) {
    console.log(`critest: building the offline images with ${TESTBED}/build-images (once; kept in ${TESTBED_ROOT})`);
    run(join(TESTBED, 'build-images'));
  } else if (!wasUp) {
    run(join(TESTBED, 'registry-up'));
  }
  const hosts = await mkdtemp(join(tmpdir(), 'tscri-critest-hosts-'));
  run(join(TESTBED, 'write-hosts'), [hosts]);
  return {
    toml: `[registry]\nconfig_path = "${hosts}"\n`,
    note: `images from the testbed registries (${TESTBED})`,
    async stop() {
      if (!wasUp) run(join(TESTBED, 'registry-down'));
      await rm(hosts, { recursive: true, force: true });
    },
  };
}

/** Removes what failed specs left behind, so the checks below see only leaks of tscri's own. */
async function removeLeftPods(d: TestDaemon): Promise<number> {
  const { items } = await d.call('ListPodSandbox', {});
  for (const pod of items) {
    await d.call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
    await d.call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
  }
  return items.length;
}

function errorLines(output: string, max = 40): string[] {
  const lines: string[] = [];
  for (const line of output.split('\n')) {
    try {
      const entry = JSON.parse(line);
      if (entry.level >= 50) lines.push(line.slice(0, 400));
    } catch {
      if (line.trim()) lines.push(line.slice(0, 400));
    }
  }
  return lines.slice(-max);
}

async function main(): Promise<number> {
  const critest = findCritest();
  if (!critest) {
    console.log(`critest: SKIPPED — critest is neither on PATH nor in ${FALLBACK_DIR} (README, "critest", says how to get it)`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.log('critest: SKIPPED — it needs root (the daemon it tests manages namespaces, mounts and cgroups)');
    return 0;
  }
  const binDir = dirname(critest);
  // critest runs its parallel nodes through ginkgo, which it looks up on PATH.
  const env = { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}` };
  const started = Date.now();
  const tag = randomBytes(3).toString('hex');
  const parent = `/tscri-critest-${tag}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  const problems: string[] = [];
  let outcome: Outcome | undefined;
  let daemon: TestDaemon | undefined;
  try {
    let images: Images;
    if (existsSync(join(TESTBED, 'write-hosts'))) {
      images = await testbedImages();
    } else {
      images = { toml: '', note: `no testbed at ${TESTBED}: images come from their upstream registries`, stop: async () => {} };
    }
    cleanups.unshift(() => images.stop());
    const net: TestNetwork = await makeTestNetwork();
    cleanups.unshift(() => net.cleanup());
    // NRI on, so that critest's NRI specs run: its test plugins connect to this socket.
    const nriDir = await mkdtemp(join(tmpdir(), 'tscri-critest-nri-'));
    cleanups.unshift(() => rm(nriDir, { recursive: true, force: true }));
    const nriSocket = join(nriDir, 'nri.sock');
    const nri = `[nri]\nenable = true\nsocket_path = "${nriSocket}"\nplugin_path = "${join(nriDir, 'plugins')}"\nplugin_config_path = "${join(nriDir, 'conf.d')}"\n`;
    daemon = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n${images.toml}${net.toml}${nri}` });
    const d = daemon;
    cleanups.unshift(async () => {
      await d.cleanup();
      await removeCgroup(parent);
    });
    const version = spawnSync(critest, ['-version'], { encoding: 'utf8', env }).stdout.match(/critest version: (\S+)/)?.[1] ?? '?';
    console.log(`critest: ${critest} (${version}), ${images.note}`);
    const reportDir = await mkdtemp(join(tmpdir(), 'tscri-critest-report-'));
    cleanups.unshift(() => rm(reportDir, { recursive: true, force: true }));
    const reportFile = join(reportDir, 'report.json');
    const args = [
      '-runtime-endpoint',
      `unix://${d.socket}`,
      '-nri-socket',
      nriSocket,
      '-parallel',
      '2',
      '-ginkgo.no-color',
      '-ginkgo.json-report',
      reportFile,
      ...process.argv.slice(2),
    ];
    const exit = await new Promise<number | null>((resolve) => {
      const child = spawn(critest, args, { stdio: ['ignore', 'inherit', 'inherit'], env, cwd: reportDir });
      const timer = setTimeout(() => {
        problems.push(`critest did not finish within ${RUN_TIMEOUT_MS / 60_000} minutes`);
        child.kill('SIGKILL');
      }, RUN_TIMEOUT_MS);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    if (existsSync(reportFile)) outcome = outcomeOf(JSON.parse(readFileSync(reportFile, 'utf8')));
    else problems.push(`critest wrote no report (exit ${exit})`);
    if (outcome && exit !== 0 && outcome.failed.length === 0)
      problems.push(`critest exited with ${exit} although no spec failed (a suite-level failure; see its output above)`);
    const left = await removeLeftPods(d);
    if (left) console.log(`critest: removed ${left} pod(s) that failed specs left behind`);
    const leaks = await net.leftovers([]);
    if (leaks.length) problems.push(`the pods' network was not cleaned up:\n  ${leaks.join('\n  ')}`);
  } catch (err) {
    problems.push(`critest could not run: ${(err as Error).stack ?? err}`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((err) => problems.push(`cleanup: ${(err as Error).message}`));
  }

  const unexpected = outcome?.failed.filter((f) => f.name !== PINNED_DIGEST_SPEC) ?? [];
  const allowed = outcome?.failed.filter((f) => f.name === PINNED_DIGEST_SPEC) ?? [];
  if (outcome) {
    const byReason = new Map<string, string[]>();
    for (const s of outcome.skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.name]);
    console.log('\ncritest: specs that skipped themselves, by reason:');
    for (const [reason, names] of byReason) console.log(`  ${reason} (${names.length}):\n${names.map((n) => `    - ${n}`).join('\n')}`);
    if (allowed.length) console.log(`critest: failed as expected offline (its image is pinned by an upstream digest): ${PINNED_DIGEST_SPEC}`);
    if (unexpected.length) {
      console.log('critest: FAILED specs:');
      for (const f of unexpected) console.log(`  - ${f.name}\n      ${f.message.split('\n').slice(0, 6).join('\n      ')}`);
    }
  }
  if (problems.length) {
    console.log(`critest: ${problems.join('\ncritest: ')}`);
    if (daemon) console.log(`critest: the daemon's last errors:\n${errorLines(daemon.output()).join('\n')}`);
  }
  const ok = !!outcome && unexpected.length === 0 && problems.length === 0;
  const seconds = Math.round((Date.now() - started) / 1000);
  const counts = outcome
    ? `${outcome.passed.length} passed, ${outcome.failed.length} failed${allowed.length ? ' (1 allowed: the pinned-digest spec)' : ''}, ${outcome.skipped.length + outcome.filtered} skipped (${outcome.filtered} filtered out)`
    : 'no results';
  console.log(`critest: ${ok ? 'PASS' : 'FAIL'} — ${counts}, ${seconds} s`);
  return ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main();
}
