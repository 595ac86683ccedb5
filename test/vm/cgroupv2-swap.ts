// Runs inside the cgroup-v2-only VM (see test/integration/cgroupv2-swap.test.ts):
// starts a registry and a daemon, runs containers with the resources kubelet
// sends for NoSwap and LimitedSwap, and prints what landed in their cgroups.
import { mkdir, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { startDaemon } from '../helpers/daemon.ts';

const MiB = 1024 * 1024;
const started = Date.now();
// Phase timings on stderr: the emulated VM is slow, and they show where time goes.
const phase = (name: string) => process.stderr.write(`vm: ${name} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
// The VM's /tmp is an overlay, which cannot hold overlay whiteouts or upper dirs: use a tmpfs.
const scratch = '/run/tscri-vm';
await mkdir(scratch, { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', scratch]);
process.env.TMPDIR = scratch;
const results: Record<string, unknown> = {};
const registry = await startRegistry({ startTimeoutMs: 600_000 });
phase('registry serving');
const d = await startDaemon({ config: 'default_cgroup_parent = "/tscri-vm"\n[cni]\nconf_dir = "/nonexistent"\n', startTimeoutMs: 180_000 });
phase('tscri serving');
try {
  await pushBusybox(registry.url, 'vm/busybox', 'v1');
  const image = `${registry.host}/vm/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const podConfig = {
    metadata: { name: 'vm', namespace: 'vm', uid: randomBytes(4).toString('hex'), attempt: 0 },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: podConfig });
  const run = async (name: string, command: string, resources: Record<string, unknown>) => {
    const { container_id } = await d.call('CreateContainer', {
      pod_sandbox_id: pod,
      config: { metadata: { name }, image: { image }, command: ['sh', '-c', command], linux: { resources } },
      sandbox_config: podConfig,
    });
    await d.call('StartContainer', { container_id });
    const { info } = await d.call('ContainerStatus', { container_id, verbose: true });
    const spec = JSON.parse(info.info).runtimeSpec;
    const dir = `/sys/fs/cgroup${spec.linux.cgroupsPath}`;
    const read = (f: string) =>
      readFile(`${dir}/${f}`, 'utf8').then(
        (t) => t.trim(),
        () => 'absent',
      );
    return { id: container_id, dir, read };
  };
  const files = async (c: { read: (f: string) => Promise<string> }) => ({
    'memory.max': await c.read('memory.max'),
    'memory.swap.max': await c.read('memory.swap.max'),
    'cpu.max': await c.read('cpu.max'),
    'cpu.weight': await c.read('cpu.weight'),
    'pids.max': await c.read('pids.max'),
  });
  const base = { memory_limit_in_bytes: 64 * MiB, cpu_quota: 50000, cpu_period: 100000, cpu_shares: 512 };
  results.noSwap = await files(await run('noswap', 'sleep 300', { ...base, unified: { 'memory.swap.max': '0' } }));
  results.limitedSwap = await files(await run('limited', 'sleep 300', { ...base, unified: { 'memory.swap.max': String(32 * MiB) } }));
  results.swapLimitField = await files(await run('swapfield', 'sleep 300', { ...base, memory_swap_limit_in_bytes: 128 * MiB }));
  // Memory beyond memory.max goes to swap when LimitedSwap allows it (tmpfs pages swap out).
  const hog = await run('hog', `head -c ${48 * MiB} /dev/zero > /dev/shm/fill && echo filled && sleep 300`, {
    memory_limit_in_bytes: 32 * MiB,
    unified: { 'memory.swap.max': String(128 * MiB) },
  });
  let swapped = '0';
  for (let i = 0; i < 100; i++) {
    swapped = await hog.read('memory.swap.current');
    if (Number(swapped) > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  results.hogSwapCurrent = Number(swapped);
  results.hogState = (await d.call('ContainerStatus', { container_id: hog.id })).status.state;
  await d.call('StopPodSandbox', { pod_sandbox_id: pod });
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod });
} catch (err) {
  results.error = (err as Error).stack ?? String(err);
} finally {
  await d.cleanup();
  await registry.stop();
}
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
