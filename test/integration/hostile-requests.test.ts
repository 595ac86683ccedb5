// Every RPC, called with an empty request and with one whose ids, names and
// paths try to climb out of tscri's directories, gets a gRPC status with a
// message; the daemon keeps serving and nothing appears outside its dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon } from '../helpers/daemon.ts';
import { loadServices } from '../../src/server/server.ts';

/** Codes that would mean the daemon did not understand its own failure. */
const UNEXPECTED = new Set([status.UNKNOWN, status.INTERNAL]);

function hostileRequest(escape: string) {
  const metadata = { name: escape, namespace: escape, uid: escape, attempt: 0 };
  return {
    container_id: escape,
    pod_sandbox_id: escape,
    image: { image: escape },
    filter: { id: escape, pod_sandbox_id: escape },
    config: {
      metadata,
      image: { image: escape },
      log_directory: escape,
      log_path: escape,
      hostname: escape,
      linux: { cgroup_parent: escape },
      command: ['true'],
    },
    sandbox_config: { metadata, log_directory: escape },
    cmd: ['true'],
    location: escape,
    output_path: escape,
    checkpoint_path: escape,
    path: escape,
    timeout: 1,
  };
}

test('every RPC answers empty and escaping requests with a status and the daemon keeps serving', { timeout: 180_000 }, async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const services = loadServices();
  const marker = `/tmp/tscri-escape-${randomBytes(4).toString('hex')}`;
  const escape = `../../../../../../..${marker}`;
  const rpcs = [...Object.keys(services.runtime), ...Object.keys(services.image)];
  for (const rpc of rpcs) {
    for (const request of [{}, hostileRequest(escape)]) {
      const outcome = await d.call(rpc, request, { timeoutMs: 3000 }).then(
        () => undefined,
        (err: any) => err,
      );
      if (outcome && outcome.code !== status.DEADLINE_EXCEEDED) {
        assert.ok(!UNEXPECTED.has(outcome.code), `${rpc}: ${outcome.code} ${outcome.details}`);
        assert.ok(outcome.details, `${rpc}: an error without a message`);
      }
      assert.equal(d.process.exitCode, null, `the daemon exited after ${rpc}`);
    }
  }
  assert.equal(existsSync(marker), false, 'a request wrote outside the daemon directories');
  const version = await d.call('Version', {});
  assert.equal(version.runtime_name, 'tscri');
  assert.doesNotMatch(d.output(), /uncaught|unhandled/i);
});
