// Requests whose ids, names, references and paths are a megabyte long: every
// answer is a status with a short message (the input quoted only in part),
// and the client's connection keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
import { loadServices } from '../../src/server/server.ts';

const MiB = 1024 * 1024;
/** The longest message a status may carry here: the input is quoted in part, if at all. */
const SHORT = 2048;

function hugeRequest(huge: string) {
  const metadata = { name: huge, namespace: 'ns', uid: 'uid', attempt: 0 };
  return {
    container_id: huge,
    pod_sandbox_id: huge,
    image: { image: huge },
    filter: { id: huge, pod_sandbox_id: huge },
    config: { metadata, image: { image: huge }, log_directory: `/${huge}`, log_path: huge, hostname: huge, command: ['true'] },
    sandbox_config: { metadata, log_directory: `/${huge}` },
    cmd: [huge],
    port: [80],
    location: huge,
    path: huge,
    timeout: 1,
  };
}

test('a 1 MB container name is refused with a short INVALID_ARGUMENT; the connection still works', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const name = 'n'.repeat(MiB);
  await assert.rejects(
    d.call('CreateContainer', { pod_sandbox_id: 'p', config: { metadata: { name }, image: { image: 'busybox' } }, sandbox_config: {} }),
    (e: any) => e.code === status.INVALID_ARGUMENT && e.details.length < SHORT && /metadata\.name/.test(e.details),
  );
  await assert.rejects(
    d.call('RunPodSandbox', { config: { metadata: { name, namespace: 'ns', uid: 'u' } } }),
    (e: any) => e.code === status.INVALID_ARGUMENT && e.details.length < SHORT && /name/.test(e.details),
  );
  assert.equal((await d.call('Version', {})).runtime_name, 'tscri');
});

test('every RPC answers megabyte-long ids, names and paths with a short message', { timeout: 180_000 }, async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const services = loadServices();
  const rpcs = [...Object.keys(services.runtime), ...Object.keys(services.image)];
  for (const huge of ['h'.repeat(MiB), `x/${'../'.repeat(MiB / 3)}`]) {
    const request = hugeRequest(huge);
    for (const rpc of rpcs) {
      const outcome = await d.call(rpc, request, { timeoutMs: 5000 }).then(
        () => undefined,
        (err: any) => err,
      );
      if (outcome) {
        assert.ok(typeof outcome.details === 'string', `${rpc}: ${outcome}`);
        assert.ok(
          outcome.details.length < SHORT,
          `${rpc}: a message of ${outcome.details.length} characters (${outcome.code}: ${outcome.details.slice(0, 200)}…)`,
        );
        assert.notEqual(outcome.code, status.UNKNOWN, `${rpc}: ${outcome.details}`);
      }
      assert.equal((await d.call('Version', {})).runtime_name, 'tscri', `the connection works after ${rpc}`);
    }
  }
});
