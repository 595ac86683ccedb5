// tscri under systemd: the notify protocol (READY, RELOADING with
// MONOTONIC_USEC, STOPPING, STATUS) on a fake NOTIFY_SOCKET, socket
// activation with a listening socket handed in as LISTEN_FDS, and the
// descriptors or variables that must be refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../helpers/daemon.ts';
import { criClient } from '../helpers/cri-client.ts';
import { closeFd, datagramSocket, listeningTcpSocket, listeningUnixSocket, notifySocket } from '../helpers/systemd.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('readiness, reload and stop are notified on NOTIFY_SOCKET', async (t) => {
  const dir = await tempDir(t, 'tscri-notify-');
  const notify = notifySocket(join(dir, 'notify.sock'));
  t.after(() => notify.close());
  const d = await startDaemon({ env: { NOTIFY_SOCKET: notify.address } });
  t.after(() => d.cleanup());

  const ready = await notify.waitFor((m) => m.READY === '1', 'READY=1');
  assert.equal(ready.MAINPID, String(d.process.pid));
  assert.match(ready.STATUS!, new RegExp(`serving the CRI on ${d.socket}`));
  const first = notify.messages();
  assert.ok(first.indexOf(ready) > 0 && first[0]!.STATUS, 'a STATUS while loading comes before READY=1');
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');

  const before = process.hrtime.bigint() / 1000n;
  d.process.kill('SIGHUP');
  const reloading = await notify.waitFor((m) => m.RELOADING === '1', 'RELOADING=1');
  const after = process.hrtime.bigint() / 1000n;
  // Both processes read CLOCK_MONOTONIC: the reload began between our two readings.
  const usec = BigInt(reloading.MONOTONIC_USEC!);
  assert.ok(usec >= before && usec <= after, `MONOTONIC_USEC ${usec} between ${before} and ${after}`);
  const all = () => notify.messages();
  await notify.waitFor((m) => m.READY === '1' && all().indexOf(m) > all().indexOf(reloading), 'READY=1 after the reload');

  // A reload that fails still ends with READY=1 and says why in STATUS.
  await writeFile(join(d.dir, 'tscri.toml'), 'no_such_key = 1\n');
  d.process.kill('SIGHUP');
  const failed = await notify.waitFor((m) => m.READY === '1' && /reload failed/.test(m.STATUS ?? ''), 'READY=1 after a failed reload');
  assert.match(failed.STATUS!, /unknown config key no_such_key/);

  assert.equal(await d.stop(), 0);
  const stopping = await notify.waitFor((m) => m.STOPPING === '1', 'STOPPING=1');
  assert.ok(stopping.STATUS);
});

test('an abstract NOTIFY_SOCKET (@name) is notified too; an unusable one does not stop the daemon', async (t) => {
  const name = `@tscri-test-notify-${process.pid}-${Date.now()}`;
  const notify = notifySocket(name);
  t.after(() => notify.close());
  const d = await startDaemon({ env: { NOTIFY_SOCKET: name } });
  t.after(() => d.cleanup());
  await notify.waitFor((m) => m.READY === '1', 'READY=1 on the abstract socket');

  for (const bad of ['relative/path', `/nonexistent/${'x'.repeat(200)}`, '/nonexistent/notify.sock']) {
    const other = await startDaemon({ env: { NOTIFY_SOCKET: bad } });
    assert.equal((await other.call('Version', {})).runtime_name, 'tscri');
    assert.match(other.output(), /cannot notify systemd/);
    await other.cleanup();
  }
});

test('a socket handed in as LISTEN_FDS is served, and stays open across a restart', async (t) => {
  const dir = await tempDir(t, 'tscri-activate-');
  const path = join(dir, 'activated.sock');
  const fd = listeningUnixSocket(path);
  t.after(() => closeFd(fd));
  const d = await startDaemon({ listenFd: fd, socket: path, env: { LISTEN_FDNAMES: 'cri' } });
  const client = criClient(path);
  t.after(() => client.close());
  assert.equal((await client.call('Version', {})).runtime_name, 'tscri');
  const line = d
    .output()
    .split('\n')
    .find((l) => l.includes('tscri is serving'))!;
  assert.equal(JSON.parse(line).activated, true);
  assert.equal(JSON.parse(line).socket, path);
  assert.match(d.output(), /not on the configured listen address/);
  assert.ok(!existsSync(join(d.dir, 'tscri.sock')), 'the configured --listen socket is not made');

  // Stopped, the daemon leaves systemd's socket in place; a new daemon serves on it.
  assert.equal(await d.stop(), 0);
  assert.ok(statSync(path).isSocket());
  const second = await d.restart({ listenFd: fd, socket: path });
  t.after(() => second.cleanup());
  const again = criClient(path);
  t.after(() => again.close());
  assert.equal((await again.call('Version', {})).runtime_name, 'tscri');
});

test('LISTEN_FDS meant for another process is ignored; unservable descriptors are refused by name', async (t) => {
  const d = await startDaemon({ env: { LISTEN_FDS: '1', LISTEN_PID: '1' } });
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
  assert.equal(
    JSON.parse(
      d
        .output()
        .split('\n')
        .find((l) => l.includes('tscri is serving'))!,
    ).activated,
    false,
  );
  await d.cleanup();

  const dir = await tempDir(t, 'tscri-activate-bad-');
  const file = join(dir, 'plain-file');
  await writeFile(file, 'not a socket');
  const fileFd = openSync(file, 'r');
  const tcp = listeningTcpSocket();
  const dgram = datagramSocket();
  const unnamed = listeningUnixSocket(join(dir, 'two.sock'));
  t.after(() => {
    closeSync(fileFd);
    [tcp, dgram, unnamed].forEach(closeFd);
  });
  const cases: Array<{ fd?: number; env: Record<string, string>; error: RegExp }> = [
    { fd: fileFd, env: {}, error: /descriptor 3 from LISTEN_FDS is not a socket/ },
    { fd: tcp, env: {}, error: /not a unix socket/ },
    { fd: dgram, env: {}, error: /not a stream socket/ },
    { fd: unnamed, env: { LISTEN_FDS: '2' }, error: /2 sockets and none is named cri/ },
    { fd: unnamed, env: { LISTEN_FDS: 'x'.repeat(100000) }, error: /LISTEN_FDS="x{20}" is not a count/ },
    { fd: unnamed, env: { LISTEN_FDNAMES: 'a:cri' }, error: /names cri at position 2 but LISTEN_FDS is 1/ },
  ];
  for (const [i, c] of cases.entries()) {
    const root = join(dir, `root${i}`);
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(
        '/bin/sh',
        [
          '-c',
          'LISTEN_PID=$$ exec "$0" "$@"',
          process.execPath,
          CLI,
          'serve',
          '--listen',
          `unix://${join(dir, `s${i}.sock`)}`,
          '--root',
          root,
          '--state',
          join(dir, `state${i}`),
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe', c.fd ?? 'ignore'],
          env: { ...process.env, LISTEN_FDS: '1', ...c.env },
        },
      );
      let stderr = '';
      child.stderr!.on('data', (b) => (stderr += b));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
    assert.equal(result.code, 1, `case ${i}: ${result.stderr}`);
    assert.match(result.stderr, c.error, `case ${i}`);
    assert.ok(result.stderr.length < 2000, `case ${i}: the message quotes little of the input`);
  }
  assert.deepEqual((await readdir(dir)).sort(), ['plain-file', 'two.sock'], 'refused starts leave no directories');
});

test('systemd-analyze verify accepts the shipped units installed as the README says', {
  skip: !existsSync('/usr/bin/systemd-analyze') && 'systemd-analyze is not installed',
}, async (t) => {
  // In a private mount namespace: the checkout appears at /opt/tscri and the
  // units in /etc/systemd/system, as after the README's install steps, and
  // nothing of the host changes.
  const top = fileURLToPath(new URL('../..', import.meta.url));
  const units = await tempDir(t, 'tscri-units-');
  for (const unit of await readdir(join(top, 'systemd'))) await writeFile(join(units, unit), await readFile(join(top, 'systemd', unit)));
  assert.deepEqual((await readdir(units)).sort(), ['tscri.service', 'tscri.socket']);
  const script = [
    'set -e',
    'mount -t tmpfs tmpfs /opt',
    'mkdir /opt/tscri',
    `mount --bind "${top}" /opt/tscri`,
    `mount --bind "${units}" /etc/systemd/system`,
    'systemd-analyze verify /etc/systemd/system/tscri.socket /etc/systemd/system/tscri.service',
  ].join('\n');
  const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '', 'no warnings either');
});
