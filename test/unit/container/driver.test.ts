// The runtime driver on hand-made bundles: conmon runs runc create, the
// container starts, logs in the CRI format, its exit code reaches the exit
// directory and wakes the watcher, and delete leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OciRuntime } from '../../../src/container/runtime.ts';
import { conmonCreateArgs, firstSyncMessage, spawnConmon, readPidFile, bundleFiles } from '../../../src/container/conmon.ts';
import { ExitWatcher, type ExitInfo } from '../../../src/container/exits.ts';
import { CONMON, RUNC, makeBundle, makeFixture, newId } from './bundle-fixture.ts';

test('conmon runs a container that logs and exits with its code', async (t) => {
  const f = await makeFixture();
  const runtime = new OciRuntime(RUNC, f.runtimeRoot);
  const ids: string[] = [];
  const exits = new Map<string, ExitInfo>();
  const waiters = new Map<string, (e: ExitInfo) => void>();
  await mkdir(f.logDir, { recursive: true });
  await mkdir(f.socketDir, { recursive: true });
  const watcher = new ExitWatcher(f.exitDir, (e) => {
    exits.set(e.id, e);
    waiters.get(e.id)?.(e);
  });
  await watcher.start();
  t.after(async () => {
    watcher.close();
    for (const id of ids) await runtime.delete(id).catch(() => undefined);
    await f.cleanup();
  });

  const id = newId();
  ids.push(id);
  const bundle = await makeBundle(f, id, ['/bin/sh', '-c', 'echo hello; echo oops >&2; printf partial; exit 7']);
  const logPath = join(f.logDir, 'c.log');
  const args = conmonCreateArgs({
    conmonPath: CONMON,
    runtimePath: RUNC,
    runtimeArgs: runtime.globalArgs(),
    id,
    name: 'c',
    bundle,
    exitDir: f.exitDir,
    socketDir: f.socketDir,
    logPath,
    terminal: false,
    stdin: false,
    stdinOnce: false,
    systemdCgroup: false,
  });
  const conmon = spawnConmon(CONMON, args, bundle, false);
  const first = await firstSyncMessage(conmon, conmon.sync, 30_000);
  assert.ok(first.data > 0, `pid reported: ${JSON.stringify(first)}`);
  assert.equal((await runtime.state(id))?.status, 'created');
  const conmonPid = await readPidFile(bundleFiles(bundle).conmonPid);
  assert.ok(conmonPid && conmonPid > 0);

  const exited = new Promise<ExitInfo>((resolve) => waiters.set(id, resolve));
  await runtime.start(id);
  const exit = exits.get(id) ?? (await exited);
  assert.equal(exit.exitCode, 7);
  assert.equal((await readFile(bundleFiles(bundle).exit, 'utf8')).trim(), '7');

  const log = await readFile(logPath, 'utf8');
  const lines = log.trim().split('\n');
  const re = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-Z][\d:]* (stdout|stderr) ([PF]) (.*)$/;
  const parsed = lines.map((l) => re.exec(l)).map((m) => (m ? [m[1], m[2], m[3]] : null));
  assert.deepEqual(
    parsed.filter((p) => p !== null).sort(),
    [
      ['stderr', 'F', 'oops'],
      ['stdout', 'F', 'hello'],
      ['stdout', 'P', 'partial'],
    ].sort(),
    log,
  );

  await runtime.delete(id);
  assert.equal(await runtime.state(id), undefined);
  // conmon leaves once the container is gone.
  await waitGone(conmonPid!);
});

test('the runtime reports unknown ids as absent and kill/delete on them are no-ops', async (t) => {
  const f = await makeFixture();
  t.after(() => f.cleanup());
  const runtime = new OciRuntime(RUNC, f.runtimeRoot);
  assert.equal(await runtime.state('nosuchcontainer'), undefined);
  await runtime.kill('nosuchcontainer', 'SIGKILL');
  await runtime.delete('nosuchcontainer');
});

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    // A zombie has exited; init reaps it in its own time.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (!stat || stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`process ${pid} is still alive`);
}
