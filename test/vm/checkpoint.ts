// Runs inside the cgroup-v2-only VM (see test/integration/checkpoint.test.ts),
// where CRIU works: a counter container is checkpointed while it runs, the
// archive is checked, and a container restored from it in a new pod goes on
// counting from where the checkpoint left it, with its file changes.
import { mkdir, readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { startDaemon } from '../helpers/daemon.ts';

const started = Date.now();
const phase = (name: string) => process.stderr.write(`vm: ${name} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
// The VM's /tmp is an overlay, which cannot hold overlay upper dirs: use a tmpfs.
const scratch = '/run/tscri-vm';
await mkdir(scratch, { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', scratch]);
process.env.TMPDIR = scratch;
const results: Record<string, unknown> = {};
const registry = await startRegistry({ startTimeoutMs: 600_000 });
phase('registry serving');
const d = await startDaemon({ config: 'default_cgroup_parent = "/tscri-vm"\n[cni]\nconf_dir = "/nonexistent"\n', startTimeoutMs: 600_000 });
phase('tscri serving');

/** The numbers a counter container printed, from its CRI log. */
async function counts(logFile: string): Promise<number[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split(' ').slice(3).join(' ')))
    .filter((n) => Number.isFinite(n));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Names and sizes of the entries of a tar file. */
async function tarEntries(file: string): Promise<Map<string, { type: string; size: number; body?: string }>> {
  const entries = new Map<string, { type: string; size: number; body?: string }>();
  const tar = extract();
  tar.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.length < 64 && chunks.push(c as Buffer));
    stream.on('end', () => {
      const small = (header.size ?? 0) < 4096;
      entries.set(header.name, { type: header.type ?? '', size: header.size ?? 0, ...(small ? { body: Buffer.concat(chunks).toString() } : {}) });
      next();
    });
  });
  await pipeline(createReadStream(file), tar);
  return entries;
}

try {
  await pushBusybox(registry.url, 'vm/busybox', 'v1');
  const image = `${registry.host}/vm/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const logDir = join(scratch, 'logs');
  const podConfig = (name: string) => ({
    metadata: { name, namespace: 'vm', uid: randomBytes(4).toString('hex'), attempt: 0 },
    log_directory: join(logDir, name),
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  });
  const podA = podConfig('original');
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: podA });
  // The count lives only in the shell's memory; /count is written for comparison.
  const script = 'echo before > /data.txt; rm /etc/group; i=0; while true; do i=$((i+1)); echo $i; echo $i > /count; sleep 0.2; done';
  const { container_id: original } = await d.call('CreateContainer', {
    pod_sandbox_id: pod,
    config: { metadata: { name: 'counter' }, image: { image }, command: ['sh', '-c', script], log_path: 'counter.log' },
    sandbox_config: podA,
  });
  await d.call('StartContainer', { container_id: original });
  const originalLog = join(logDir, 'original', 'counter.log');
  await waitFor('the counter to reach 10', async () => ((await counts(originalLog)).length >= 10 ? true : undefined));
  phase('counter running');

  const archive = join(scratch, 'counter.tar');
  const t0 = Date.now();
  await d.call('CheckpointContainer', { container_id: original, location: archive, timeout: 300 }, { timeoutMs: 600_000 });
  results.checkpointMs = Date.now() - t0;
  phase('checkpointed');
  const entries = await tarEntries(archive);
  results.entries = [...entries.keys()].filter((n) => !n.startsWith('checkpoint/') || n === 'checkpoint/').sort();
  results.criuImages = [...entries.keys()].filter((n) => n.startsWith('checkpoint/') && n.endsWith('.img')).length;
  results.archiveBytes = (await import('node:fs')).statSync(archive).size;
  results.archiveMode = ((await import('node:fs')).statSync(archive).mode & 0o777).toString(8);
  const configDump = JSON.parse(entries.get('config.dump')?.body ?? '{}');
  results.configDump = {
    id: configDump.id,
    rootfsImageName: configDump.rootfsImageName,
    podSandboxId: configDump.podSandboxId,
    command: configDump.containerConfig?.command,
  };
  const rootfsDiff = join(scratch, 'rootfs-diff.tar');
  execFileSync('tar', ['-xf', archive, '-C', scratch, 'rootfs-diff.tar']);
  const diff = await tarEntries(rootfsDiff);
  results.diffEntries = [...diff.keys()].sort();
  const countAtCheckpoint = Number(diff.get('count')?.body?.trim());
  results.countAtCheckpoint = countAtCheckpoint;

  const stillRunning = (await d.call('ContainerStatus', { container_id: original })).status.state;
  const before = (await counts(originalLog)).length;
  await new Promise((r) => setTimeout(r, 1500));
  results.originalAfter = { state: stillRunning, keptCounting: (await counts(originalLog)).length > before };

  const podB = podConfig('restored');
  const { pod_sandbox_id: pod2 } = await d.call('RunPodSandbox', { config: podB });
  const { container_id: restored } = await d.call('CreateContainer', {
    pod_sandbox_id: pod2,
    config: { metadata: { name: 'counter' }, image: { image: archive }, log_path: 'counter.log', labels: { restored: 'yes' } },
    sandbox_config: podB,
  });
  const t1 = Date.now();
  await d.call('StartContainer', { container_id: restored }, { timeoutMs: 600_000 });
  results.restoreMs = Date.now() - t1;
  phase('restored');
  const restoredLog = join(logDir, 'restored', 'counter.log');
  const restoredCounts = await waitFor('the restored counter to print', async () => {
    const c = await counts(restoredLog);
    return c.length >= 3 ? c : undefined;
  });
  results.restoredFirst = restoredCounts.slice(0, 3);
  const exec = async (cmd: string[]) => {
    const r = await d.call('ExecSync', { container_id: restored, cmd, timeout: 60 }, { timeoutMs: 120_000 });
    return { exit: r.exit_code, out: r.stdout.toString().trim() };
  };
  results.dataFile = await exec(['cat', '/data.txt']);
  results.groupFile = await exec(['ls', '/etc/group']);
  results.countFile = await exec(['cat', '/count']);
  const status = await d.call('ContainerStatus', { container_id: restored, verbose: true });
  const info = JSON.parse(status.info.info);
  results.restoredStatus = {
    state: status.status.state,
    image: status.status.image.image,
    labels: status.status.labels,
    restored: info.restored,
    restoredFrom: info.restoredFrom,
  };

  for (const id of [pod, pod2]) {
    await d.call('StopPodSandbox', { pod_sandbox_id: id });
    await d.call('RemovePodSandbox', { pod_sandbox_id: id });
  }
} catch (err) {
  results.error = (err as Error).stack ?? String(err);
  results.daemonLog = d
    .output()
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .slice(-8)
    .join('\n');
} finally {
  await d.cleanup();
  await registry.stop();
}
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
