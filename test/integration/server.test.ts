// The daemon itself: serving the socket, Version/Status/RuntimeConfig,
// UNIMPLEMENTED for RPCs without a handler, socket handling and shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
import { handlerTable, loadServices } from '../../src/server/server.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

test('Version, Status and RuntimeConfig answer over the socket', async (t) => {
  const cniDir = await mkdtemp(join(tmpdir(), 'tscri-cni-'));
  t.after(() => rm(cniDir, { recursive: true, force: true }));
  const d = await startDaemon({ config: `cgroup_driver = "systemd"\n[cni]\nconf_dir = "${cniDir}"\n` });
  t.after(() => d.cleanup());

  const version = await d.call('Version', { version: 'v1' });
  assert.equal(version.runtime_name, 'tscri');
  assert.equal(version.runtime_api_version, 'v1');
  assert.match(version.runtime_version, /^\d+\.\d+\.\d+/);

  const before = await d.call('Status', {});
  const condition = (s: any, type: string) => s.status.conditions.find((c: any) => c.type === type);
  assert.equal(condition(before, 'RuntimeReady').status, true);
  assert.equal(condition(before, 'NetworkReady').status, false);
  assert.equal(condition(before, 'NetworkReady').reason, 'NetworkPluginNotReady');
  assert.match(condition(before, 'NetworkReady').message, new RegExp(cniDir));
  assert.deepEqual(before.runtime_handlers.map((h: any) => h.name).sort(), ['', 'crun', 'runc']);
  // What `runc features` and the kernel say: this node's runc offers "rro" but no idmapped mounts,
  // and crun 1.8 has no features command at all.
  const features = Object.fromEntries(before.runtime_handlers.map((h: any) => [h.name, h.features]));
  assert.deepEqual(features[''], features.runc);
  assert.deepEqual(features.runc, { recursive_read_only_mounts: true, user_namespaces: false });
  assert.deepEqual(features.crun, { recursive_read_only_mounts: false, user_namespaces: false });

  await writeFile(join(cniDir, '10-test.conflist'), '{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"loopback"}]}');
  const after = await d.call('Status', {});
  assert.equal(condition(after, 'NetworkReady').status, true);

  assert.deepEqual(await d.call('RuntimeConfig', {}), { linux: { cgroup_driver: 'SYSTEMD' } });
});

test('the socket is root-only and a stale socket file is replaced', async (t) => {
  const first = await startDaemon();
  const mode = (await stat(first.socket)).mode & 0o777;
  assert.equal(mode, 0o660);
  assert.equal((await stat(first.socket)).uid, 0);
  // A daemon killed hard leaves its socket file behind; the next one must take over.
  await first.kill();
  assert.ok((await stat(first.socket)).isSocket());
  const second = await first.restart();
  t.after(() => second.cleanup());
  assert.equal((await second.call('Version', {})).runtime_name, 'tscri');
});

test('a second daemon on a busy socket fails clearly', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const result = spawnSync(process.execPath, [CLI, '--listen', `unix://${d.socket}`, '--root', join(d.dir, 'r2'), '--state', join(d.dir, 's2')], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /already serving on/);
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
  assert.ok(!existsSync(join(d.dir, 'r2')) && !existsSync(join(d.dir, 's2')), 'the refused start left no root or state directory');
});

test('a start refused after it made its directories removes them and leaves no socket', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-refused-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  await writeFile(join(dir, 'c.toml'), `[metrics]\naddress = "127.0.0.1:${port}"\n`);
  const result = spawnSync(
    process.execPath,
    [
      CLI,
      'serve',
      '--config',
      join(dir, 'c.toml'),
      '--listen',
      `unix://${join(dir, 'run', 'tscri.sock')}`,
      '--root',
      join(dir, 'lib', 'root'),
      '--state',
      join(dir, 'run', 'state'),
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(result.status, 1);
  assert.match(result.stderr, /EADDRINUSE/);
  assert.deepEqual((await readdir(dir)).sort(), ['c.toml'], 'root, state and socket directories are gone');
});

test('a bad config file stops the daemon before it serves', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-badconf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'c.toml'), 'no_such_key = 1\n');
  const result = spawnSync(process.execPath, [CLI, 'serve', '--config', join(dir, 'c.toml')], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /unknown config key no_such_key/);
});

test('RPCs without a handler answer UNIMPLEMENTED with their name', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const services = loadServices();
  const handlers = handlerTable();
  const missing = [...Object.keys(services.runtime), ...Object.keys(services.image)].filter((rpc) => !handlers.get(rpc));
  for (const rpc of missing) {
    await assert.rejects(d.call(rpc, {}), (err: any) => {
      assert.equal(err.code, status.UNIMPLEMENTED, `${rpc}: ${err.message}`);
      assert.match(err.details, new RegExp(rpc));
      return true;
    });
  }
});

test('SIGTERM stops serving, removes the socket and exits 0', async () => {
  const d = await startDaemon();
  await d.call('Version', {});
  assert.equal(await d.stop(), 0);
  await assert.rejects(stat(d.socket));
  assert.match(d.output(), /shutting down/);
  await rm(d.dir, { recursive: true, force: true });
});

test('the log records each call with its duration', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  await d.call('Version', {});
  const find = () =>
    d
      .output()
      .split('\n')
      .find((l) => l.includes('"rpc":"Version"') && l.includes('"ms"'));
  for (let i = 0; i < 100 && !find(); i++) await new Promise((r) => setTimeout(r, 20));
  const line = find();
  assert.ok(line, d.output());
  assert.equal(typeof JSON.parse(line!).ms, 'number');
});

test('the state directories may be relocated and are created', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-reloc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'deep'), { recursive: true });
  const d = await startDaemon({ dir });
  t.after(() => d.stop());
  assert.ok((await stat(d.root)).isDirectory());
  assert.ok((await stat(d.state)).isDirectory());
});

test('SIGHUP reloads the CNI directory and log level from the config file', async (t) => {
  const d = await startDaemon({ config: '[cni]\nconf_dir = "/nonexistent/first"\n' });
  t.after(() => d.cleanup());
  const message = async () => (await d.call('Status', {})).status.conditions.find((c: any) => c.type === 'NetworkReady').message;
  assert.match(await message(), /first/);
  await writeFile(join(d.dir, 'tscri.toml'), '[cni]\nconf_dir = "/nonexistent/second"\n');
  d.process.kill('SIGHUP');
  for (let i = 0; i < 100 && !d.output().includes('configuration reloaded'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(await message(), /second/);
});

test('the metrics endpoint counts calls', async (t) => {
  const d = await startDaemon({ config: '[metrics]\naddress = "127.0.0.1:0"\n' });
  t.after(() => d.cleanup());
  await d.call('Version', {});
  const line = d
    .output()
    .split('\n')
    .find((l) => l.includes('serving Prometheus metrics'));
  const port = JSON.parse(line!).port;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(text, /tscri_grpc_requests_total\{rpc="Version",code="OK"\} 1/);
  assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
});

test('with legacy_authority, a client sending the socket path as :authority (older kubelet and crictl) is served', async (t) => {
  const { createConnection } = await import('node:net');
  const { writeInteger } = await import('../../src/server/authority.ts');
  const d = await startDaemon({ config: 'legacy_authority = true' });
  t.after(() => d.cleanup());
  const str = (s: string) => Buffer.concat([writeInteger(Buffer.byteLength(s), 7, 0), Buffer.from(s)]);
  const literal = (index: number, value: string) => Buffer.concat([writeInteger(index, 4, 0), str(value)]);
  const block = Buffer.concat([
    Buffer.from([0x83, 0x86]),
    literal(4, '/runtime.v1.RuntimeService/Version'),
    literal(1, d.socket),
    Buffer.concat([Buffer.from([0x00]), str('content-type'), str('application/grpc')]),
    Buffer.concat([Buffer.from([0x00]), str('te'), str('trailers')]),
  ]);
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const socket = createConnection(d.socket);
  t.after(() => socket.destroy());
  let received = Buffer.alloc(0);
  socket.on('data', (c) => (received = Buffer.concat([received, c])));
  socket.write(
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      frame(0x4, 0, 0, Buffer.alloc(0)),
      frame(0x1, 0x4, 1, block),
      frame(0x0, 0x1, 1, Buffer.from([0, 0, 0, 0, 0])),
    ]),
  );
  for (let i = 0; i < 100 && !received.includes('tscri'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(received.includes('tscri'), 'the Version response arrives');
});
