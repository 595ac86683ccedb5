// crictl (1.36 or later, which has --transport) against a real daemon and
// real containers: exec, attach and port-forward over both transports, SPDY
// and WebSocket (for port-forward, SPDY tunnelled in WebSocket as client-go
// sends it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

/** Why the tests cannot run here, or false. */
function crictlMissing(): string | false {
  try {
    const help = execFileSync('crictl', ['exec', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return help.includes('--transport') ? false : 'crictl on PATH has no --transport option (crictl 1.36 or later is needed)';
  } catch {
    return 'crictl is not on PATH (install cri-tools 1.36 or later)';
  }
}
const skip = crictlMissing();
if (skip) console.log(`# skipping the crictl streaming tests: ${skip}`);

const TRANSPORTS = ['spdy', 'websocket'] as const;
let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let image: string;
let logDir: string;
let pod: { id: string; config: object };
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-crictl-${tag}`;

before(async () => {
  if (skip) return;
  registry = await startRegistry();
  network = await makeTestNetwork();
  logDir = await mkdtemp(join(tmpdir(), 'tscri-logs-'));
  d = await startDaemon({ config: `default_cgroup_parent = "${parent}"\n${network.toml}` });
  await pushBusybox(registry.url, 'crictl/busybox', 'v1', { config: { Env: ['PATH=/bin'], Cmd: ['sh'] } });
  image = `${registry.host}/crictl/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const config = {
    metadata: { name: 'crictl', namespace: 'stream', uid: `uid-crictl-${tag}`, attempt: 0 },
    hostname: 'crictl',
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  pod = { id: (await d.call('RunPodSandbox', { config })).pod_sandbox_id, config };
});

after(async () => {
  if (skip) return;
  if (pod) {
    await d?.call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
    await d?.call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
  }
  await d?.cleanup();
  await network?.cleanup();
  await registry?.stop();
  await removeCgroup(parent).catch(() => undefined);
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

async function run(name: string, command: string[], extra: object = {}): Promise<string> {
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id: pod.id,
    config: { metadata: { name }, image: { image }, command, log_path: `${name}.log`, ...extra },
    sandbox_config: pod.config,
  });
  await d.call('StartContainer', { container_id });
  return container_id;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs crictl against the test daemon. A crictl that has not finished after
 * `limitMs` is killed and the result says so (code null), so a hang fails
 * the test instead of stalling it.
 */
function crictl(args: string[], options: { input?: string; limitMs?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn('crictl', ['--runtime-endpoint', `unix://${d.socket}`, '--timeout', '30s', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs ?? 30_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

test('crictl exec over SPDY and WebSocket: output, exit code, stdin, terminal', { skip, timeout: 120_000 }, async () => {
  const id = await run('exec', ['sleep', '3600']);
  for (const transport of TRANSPORTS) {
    const plain = await crictl(['exec', '--transport', transport, id, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(plain.stdout, 'out\n', `${transport}: ${plain.stderr}`);
    assert.match(plain.stderr, /^err$/m, transport);
    // crictl itself exits 1 and names the command's exit code.
    assert.equal(plain.code, 1, `${transport}: ${plain.stderr}`);
    assert.match(plain.stderr, /command terminated with exit code 3/, transport);

    const input = await crictl(['exec', '-i', '--transport', transport, id, 'sh', '-c', 'cat; echo done'], { input: 'from stdin\n' });
    assert.equal(input.code, 0, `${transport}: ${input.stderr}`);
    assert.equal(input.stdout, 'from stdin\ndone\n', transport);

    // A terminal for crictl itself, as a user at a shell has.
    const tty = execFileSync(
      'script',
      ['-qec', `crictl --runtime-endpoint unix://${d.socket} exec -it --transport ${transport} ${id} sh -c 'tty; stty size'`, '/dev/null'],
      {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, COLUMNS: '101', LINES: '33' },
      },
    );
    assert.match(tty, /\/dev\/pts\/\d+/, `${transport}: ${tty}`);
  }
  await d.call('StopContainer', { container_id: id, timeout: 0 });
});

test('crictl attach over SPDY and WebSocket: output, stdin; it returns when its input ends', { skip, timeout: 120_000 }, async () => {
  const script = 'while read line; do echo "got $line"; done; echo "stdin closed"';
  for (const transport of TRANSPORTS) {
    // stdin_once: the client's end of input closes the container's stdin; crictl sees the rest and returns.
    const once = await run(`once-${transport}`, ['sh', '-c', script], { stdin: true, stdin_once: true });
    const a = await crictl(['attach', '-i', '--transport', transport, once], { input: 'one\n', limitMs: 15_000 });
    assert.equal(a.code, 0, `${transport}: crictl attach returns (${a.stderr})`);
    assert.match(a.stdout, /got one\nstdin closed\n/, transport);
    await until('the container to exit', async () => (await d.call('ContainerStatus', { container_id: once })).status.state === 'CONTAINER_EXITED');

    // Without stdin_once: crictl is detached when its input ends; the container runs on.
    const open = await run(`open-${transport}`, ['sh', '-c', script], { stdin: true, stdin_once: false });
    const b = await crictl(['attach', '-i', '--transport', transport, open], { input: 'two\n', limitMs: 15_000 });
    assert.equal(b.code, 0, `${transport}: crictl attach returns (${b.stderr})`);
    assert.equal((await d.call('ContainerStatus', { container_id: open })).status.state, 'CONTAINER_RUNNING');
    await d.call('StopContainer', { container_id: open, timeout: 0 });

    // Output only: what the container prints reaches crictl.
    const ticker = await run(`ticker-${transport}`, ['sh', '-c', 'while true; do echo tick; sleep 0.2; done']);
    const child = spawn('crictl', ['--runtime-endpoint', `unix://${d.socket}`, 'attach', '--transport', transport, ticker], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const exited = new Promise((r) => child.once('close', r));
    try {
      await until(`ticks over ${transport}`, () => out.includes('tick\ntick\n'));
    } finally {
      // crictl attach does not stop on SIGINT; the client vanishing must end the stream.
      child.kill('SIGKILL');
      await exited;
    }
    assert.equal((await d.call('ContainerStatus', { container_id: ticker })).status.state, 'CONTAINER_RUNNING');
    await d.call('StopContainer', { container_id: ticker, timeout: 0 });
  }
});

test('crictl port-forward over SPDY and WebSocket reaches a server in the pod, connection after connection', { skip, timeout: 120_000 }, async () => {
  const web = await run('web', ['sh', '-c', 'echo served > /var/www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /var/www']);
  await until(
    'httpd to listen',
    async () => (await d.call('ExecSync', { container_id: web, cmd: ['sh', '-c', 'netstat -ltn | grep -q :8080'], timeout: 5 })).exit_code === 0,
  );
  for (const transport of TRANSPORTS) {
    const local = await freePort();
    const child = spawn('crictl', ['--runtime-endpoint', `unix://${d.socket}`, 'port-forward', '--transport', transport, pod.id, `${local}:8080`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const exited = new Promise((r) => child.once('close', r));
    try {
      await until(`crictl port-forward --transport ${transport} to listen`, () => out.includes('Forwarding from'));
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${local}/index.html`, { headers: { connection: 'close' } });
        assert.equal(res.status, 200, `${transport}, request ${i}: ${out}`);
        assert.equal(await res.text(), 'served\n');
      }
      assert.equal(child.exitCode, null, `crictl port-forward --transport ${transport} still runs: ${out}`);
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  }
  await d.call('StopContainer', { container_id: web, timeout: 0 });
});

test("the README's sample pod.json and container.json run with crictl", { skip }, async (t) => {
  const { readFile, writeFile } = await import('node:fs/promises');
  const top = new URL('../../runtime/crictl/', import.meta.url);
  const podJson = JSON.parse(await readFile(new URL('pod.json', top), 'utf8'));
  const ctrJson = JSON.parse(await readFile(new URL('container.json', top), 'utf8'));
  // Only what this machine needs differs: a unique uid, a free host port, a temporary log
  // directory, the image from the test registry (no network here).
  podJson.metadata.uid = `sample-${tag}`;
  podJson.log_directory = join(logDir, 'sample');
  const hostPort = await freePort();
  podJson.port_mappings[0].host_port = hostPort;
  ctrJson.image.image = image;
  const dir = await mkdtemp(join(tmpdir(), 'tscri-crictl-sample-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'pod.json'), JSON.stringify(podJson));
  await writeFile(join(dir, 'container.json'), JSON.stringify(ctrJson));
  const crictl = (...args: string[]) =>
    execFileSync('crictl', ['--runtime-endpoint', `unix://${d.socket}`, '--image-endpoint', `unix://${d.socket}`, '--timeout', '60s', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const podId = crictl('runp', join(dir, 'pod.json'));
  t.after(() => {
    try {
      crictl('rmp', '-f', podId);
    } catch {
      /* already gone */
    }
  });
  const ctrId = crictl('create', podId, join(dir, 'container.json'), join(dir, 'pod.json'));
  crictl('start', ctrId);
  assert.equal(crictl('exec', ctrId, 'sh', '-c', 'echo $GREETING'), 'hello');
  // httpd serves /etc on port 80 in the pod, reached through the host port.
  const body = await (await fetch(`http://${network.gateway}:${hostPort}/hostname`)).text();
  assert.equal(body.trim(), 'sample');
  const inspect = JSON.parse(crictl('inspectp', podId));
  assert.ok(inspect.info.pid > 0, 'inspectp shows a pid in the pod');
  crictl('stop', ctrId);
  crictl('rm', ctrId);
  crictl('stopp', podId);
  crictl('rmp', podId);
});
