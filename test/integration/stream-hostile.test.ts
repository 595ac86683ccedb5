// Hostile clients of the streaming server of a real daemon: malformed
// WebSocket frames on exec, attach and port-forward streams. Each must close
// only its own stream, with the WebSocket status for the fault, and the
// daemon must serve on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusybox } from '../helpers/images.ts';
import { makeTestNetwork, type TestNetwork } from '../helpers/cni.ts';
import { readFileSync } from 'node:fs';
import { openWebSocket, rawWebSocket, upgrade, wsFrame, zlibBomb } from '../helpers/stream-client.ts';
import { FrameType, readFrames, synStream } from '../../src/stream/spdy/frames.ts';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';

let registry: TestRegistry;
let network: TestNetwork;
let d: TestDaemon;
let image: string;
let logDir: string;
let podId: string;
let containerId: string;
const tag = randomBytes(3).toString('hex');
const parent = `/tscri-stream-hostile-${tag}`;

before(async () => {
  registry = await startRegistry();
  network = await makeTestNetwork();
  logDir = await mkdtemp(join(tmpdir(), 'tscri-logs-'));
  d = await startDaemon({ config: daemonConfig() });
  await pushBusybox(registry.url, 'hostile/busybox', 'v1', { config: { Env: ['PATH=/bin'], Cmd: ['sh'] } });
  image = `${registry.host}/hostile/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const config = {
    metadata: { name: 'hostile', namespace: 'stream', uid: `uid-hostile-${tag}`, attempt: 0 },
    hostname: 'hostile',
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  podId = (await d.call('RunPodSandbox', { config })).pod_sandbox_id;
  containerId = (
    await d.call('CreateContainer', {
      pod_sandbox_id: podId,
      config: { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '3600'], log_path: 'sleeper.log' },
      sandbox_config: config,
    })
  ).container_id;
  await d.call('StartContainer', { container_id: containerId });
});

const daemonConfig = () => `default_cgroup_parent = "${parent}"\n${network.toml}`;

after(async () => {
  // A daemon that died leaves its pod running: a new one on the same directories removes it.
  if (d && (d.process.exitCode !== null || d.process.signalCode !== null)) {
    d = await d.restart();
  }
  if (podId) {
    await d?.call('StopPodSandbox', { pod_sandbox_id: podId }).catch(() => undefined);
    await d?.call('RemovePodSandbox', { pod_sandbox_id: podId }).catch(() => undefined);
  }
  await d?.cleanup();
  await network?.cleanup();
  await registry?.stop();
  await removeCgroup(parent).catch(() => undefined);
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

// Each frame breaks RFC 6455 in one way; the status the stream must close with.
const MALFORMED: Array<{ name: string; frame: Buffer; code: number }> = [
  { name: 'a PING with a 64-bit length', frame: wsFrame({ opcode: 0x9, payload: Buffer.from('x'), length: 127 }), code: 1002 },
  { name: 'an unmasked frame', frame: wsFrame({ opcode: 0x2, payload: Buffer.from([0, 1, 2]), mask: false }), code: 1002 },
  { name: 'a reserved opcode', frame: wsFrame({ opcode: 0x3, payload: Buffer.from('x') }), code: 1002 },
  { name: 'RSV1 set without an extension', frame: wsFrame({ opcode: 0x2, payload: Buffer.from([0, 1]), rsv: 4 }), code: 1002 },
  { name: 'a 1-byte close payload', frame: wsFrame({ opcode: 0x8, payload: Buffer.from([3]) }), code: 1002 },
  { name: 'text that is not UTF-8', frame: wsFrame({ opcode: 0x1, payload: Buffer.from([0x30, 0xff, 0xfe, 0xfd]) }), code: 1007 },
];

const KINDS: Array<{ kind: string; protocols: string[]; url: () => Promise<string> }> = [
  {
    kind: 'exec',
    protocols: ['v5.channel.k8s.io'],
    url: async () => (await d.call('Exec', { container_id: containerId, cmd: ['cat'], stdin: true, stdout: true, stderr: true })).url,
  },
  {
    kind: 'attach',
    protocols: ['v4.channel.k8s.io'],
    url: async () => (await d.call('Attach', { container_id: containerId, stdout: true, stderr: true })).url,
  },
  {
    kind: 'port-forward',
    protocols: ['portforward.k8s.io'],
    url: async () => `${(await d.call('PortForward', { pod_sandbox_id: podId, port: [8080] })).url}?port=8080`,
  },
  {
    kind: 'tunnelled SPDY port-forward',
    protocols: ['SPDY/3.1+portforward.k8s.io'],
    url: async () => (await d.call('PortForward', { pod_sandbox_id: podId, port: [8080] })).url,
  },
];

for (const { kind, protocols, url } of KINDS) {
  test(`malformed WebSocket frames on a ${kind} stream close that stream only (1002/1007)`, { timeout: 60_000 }, async () => {
    for (const { name, frame, code } of MALFORMED) {
      const ws = await rawWebSocket(await url(), protocols);
      assert.equal(ws.status, 101, `${name}: the upgrade is accepted`);
      ws.socket.write(frame);
      assert.equal(await orDaemonDeath(ws.closed), code, `${name}: closed with ${code}`);
      assert.equal(d.process.exitCode, null, `${name}: the daemon is still running`);
    }
    await servesOn();
  });
}

/** The daemon's peak resident memory so far, in bytes. */
function peakMemory(): number {
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${d.process.pid}/status`, 'utf8'))![1]) * 1024;
}

for (const [what, size] of [
  ['200 KiB (within the frame limit)', 200 * 1024],
  ['1 MB (beyond the frame limit)', 1024 * 1024],
] as const) {
  test(`a ${what} SYN_STREAM whose header block inflates ~1000-fold resets the session; memory stays bounded`, { timeout: 60_000 }, async () => {
    const bomb = await zlibBomb(size);
    const before = peakMemory();
    const { url } = await d.call('Exec', { container_id: containerId, cmd: ['cat'], stdin: true, stdout: true });
    const up = await upgrade(url, 'SPDY/3.1', ['v4.channel.k8s.io']);
    assert.equal(up.status, 101);
    const received: Buffer[] = [];
    up.socket!.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<void>((r) => up.socket!.once('close', () => r()));
    up.socket!.on('error', () => undefined);
    up.socket!.write(synStream(1, 0, 0, bomb));
    await orDaemonDeath(closed);
    const goaway = readFrames(Buffer.concat(received)).frames.find((f) => f.kind === 'control' && f.type === FrameType.GOAWAY);
    assert.ok(goaway, 'the session ends with GOAWAY');
    assert.equal(goaway.data.readUInt32BE(4), 1, 'GOAWAY says PROTOCOL_ERROR');
    const grown = peakMemory() - before;
    assert.ok(grown < 64 * 1024 * 1024, `the daemon's peak memory grew by ${grown} bytes`);
    await servesOn();
  });
}

/** The promise's value, or a failure with the daemon's last words if it dies first. */
function orDaemonDeath<T>(promise: Promise<T>): Promise<T> {
  const dead = () => new Error(`the daemon died:\n${d.output().slice(-4000)}`);
  if (d.process.exitCode !== null || d.process.signalCode !== null) return Promise.reject(dead());
  let onExit!: () => void;
  const died = new Promise<never>((_, reject) => d.process.once('exit', (onExit = () => reject(dead()))));
  return Promise.race([promise, died]).finally(() => d.process.off('exit', onExit));
}

/** The daemon still answers calls and runs a well-formed WebSocket exec. */
async function servesOn(): Promise<void> {
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
  const { url } = await d.call('Exec', { container_id: containerId, cmd: ['echo', 'still here'], stdout: true });
  const { channels, closed } = await openWebSocket(url, ['v5.channel.k8s.io']);
  assert.equal(await closed, 1000);
  assert.equal(Buffer.concat(channels.get(1) ?? []).toString(), 'still here\n');
  assert.equal(JSON.parse(Buffer.concat(channels.get(3)!).toString()).status, 'Success');
}
