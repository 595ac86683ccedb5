// What the daemon's log tells an operator: a pull's start and its progress
// while it runs, the object (id and name) of each info line, error messages
// that say each thing once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.ts';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import { busyboxEntries } from '../helpers/images.ts';

let d: TestDaemon;
let reg: FakeRegistry;

before(async () => {
  reg = await new FakeRegistry().start();
  d = await startDaemon({ config: '[image]\nprogress_log_interval_seconds = 1\nprogress_deadline_seconds = 5\n' });
});

after(async () => {
  await d?.cleanup();
  await reg?.stop();
});

/** The daemon's JSON log lines so far. */
function lines(): Array<Record<string, any>> {
  return d
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** Waits (bounded) for a log line; pino writes asynchronously. */
async function logLine(match: (l: Record<string, any>) => boolean): Promise<Record<string, any>> {
  for (let i = 0; i < 100; i++) {
    const found = lines().find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no such log line in:\n${d.output()}`);
}

test("a pull logs its start and, while it runs, each blob's bytes done and total", async () => {
  // A layer of 1 MiB of random bytes, trickled in 64 KiB pieces every 200 ms: about 3 s.
  const { randomBytes } = await import('node:crypto');
  const img = await reg.addImage('logs/slow', 'v1', [[{ name: 'big', body: randomBytes(1024 * 1024).toString('base64') }]]);
  const layer = img.layerDigests[0]!;
  const blob = reg.blobs.get(layer)!;
  reg.hook = (req, res, f) => (req.url?.endsWith(`/blobs/${layer}`) ? (f.trickle(res, blob, {}, 64 * 1024, 200), true) : false);
  const ref = `${reg.host}/logs/slow:v1`;
  assert.equal((await d.call('PullImage', { image: { image: ref } })).image_ref, img.configDigest);
  reg.hook = undefined;

  // pino writes asynchronously: the last line may come after the answer.
  await logLine((l) => l.msg === 'image pulled' && l.name === ref);
  const log = lines();
  const start = log.findIndex((l) => l.msg === 'pulling image' && l.name === ref);
  const end = log.findIndex((l) => l.msg === 'image pulled' && l.name === ref);
  assert.ok(start >= 0 && end > start, 'the start is logged before the end');
  assert.equal(log[start]!.level, 30, 'at info');
  assert.equal(log[end]!.id, img.configDigest);
  const progress = log.slice(start, end).filter((l) => l.msg === 'image pull in progress' && l.name === ref);
  assert.ok(progress.length >= 1, 'a pull that runs for seconds logs its progress');
  const first = progress[0]!;
  assert.equal(first.level, 30);
  const entry = first.blobs.find((b: any) => b.digest === layer);
  assert.ok(entry, JSON.stringify(first));
  assert.equal(entry.kind, 'layer');
  assert.equal(entry.total, blob.length);
  assert.ok(entry.done >= 0 && entry.done <= entry.total);
  assert.ok(first.total >= blob.length);
});

test('a failed pull says the image and each cause once', async () => {
  reg.hook = (req, res) => {
    if (!req.url?.includes('logs/broken')) return false;
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}');
    return true;
  };
  const ref = `${reg.host}/logs/broken:v1`;
  const err = await d.call('PullImage', { image: { image: ref } }).catch((e: any) => e);
  reg.hook = undefined;
  assert.equal(err.code, status.UNAVAILABLE);
  const count = (text: string, part: string) => text.split(part).length - 1;
  assert.equal(count(err.details, 'cannot pull'), 1, err.details);
  assert.equal(count(err.details, 'disk on fire'), 1, err.details);
  assert.equal(count(err.details, ref), 1, err.details);
  // The log line of the failed call says it once too, after the RPC's name.
  const line = await logLine((l) => l.rpc === 'PullImage' && l.code === 'UNAVAILABLE');
  assert.equal(count(line.msg, 'disk on fire'), 1, line.msg);
  assert.equal(count(line.msg, 'cannot pull'), 1, line.msg);
  assert.equal(line.name, ref);
  assert.equal(line.err, undefined, 'the message is not repeated in another field');

  const missing = `${reg.host}/logs/absent:v1`;
  const notFound = await d.call('PullImage', { image: { image: missing } }).catch((e: any) => e);
  assert.equal(notFound.code, status.NOT_FOUND);
  assert.equal(count(notFound.details, missing), 1, notFound.details);
});

test('every info line about a pod, a container or an image carries its id and name', async (t) => {
  const img = await reg.addImage('logs/busybox', 'v1', [busyboxEntries()]);
  const image = `${reg.host}/logs/busybox:v1`;
  await d.call('PullImage', { image: { image } });
  const podConfig = {
    metadata: { name: 'logpod', namespace: 'logns', uid: `uid-${Date.now()}`, attempt: 0 },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await d.call('RunPodSandbox', { config: podConfig });
  t.after(() => d.call('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined));
  const { container_id: ctr } = await d.call('CreateContainer', {
    pod_sandbox_id: pod,
    config: { metadata: { name: 'logctr' }, image: { image }, command: ['sleep', '60'] },
    sandbox_config: podConfig,
  });
  await d.call('StartContainer', { container_id: ctr });
  await d.call('StopContainer', { container_id: ctr, timeout: 0 });
  await d.call('RemoveContainer', { container_id: ctr });
  await d.call('StopPodSandbox', { pod_sandbox_id: pod });
  await d.call('RemovePodSandbox', { pod_sandbox_id: pod });
  await d.call('RemoveImage', { image: { image } });
  await logLine((l) => l.msg === 'RemoveImage done');

  const expect = (rpc: string, id: string, name: string) => {
    const line = lines()
      .filter((l) => l.msg === `${rpc} done`)
      .at(-1);
    assert.ok(line, `${rpc} done is logged`);
    assert.equal(line.id, id, `${rpc} done carries the id`);
    assert.equal(line.name, name, `${rpc} done carries the name`);
  };
  expect('PullImage', img.configDigest, image);
  expect('RunPodSandbox', pod, 'logpod');
  expect('CreateContainer', ctr, 'logctr');
  expect('StartContainer', ctr, 'logctr');
  expect('StopContainer', ctr, 'logctr');
  expect('RemoveContainer', ctr, 'logctr');
  expect('StopPodSandbox', pod, 'logpod');
  expect('RemovePodSandbox', pod, 'logpod');
  expect('RemoveImage', img.configDigest, image);
  assert.equal(lines().find((l) => l.msg === 'CreateContainer done')!.podId, pod);
  assert.equal(lines().find((l) => l.msg === 'RunPodSandbox done')!.namespace, 'logns');

  // The services' own info lines about objects name them too.
  const objectLines = lines().filter((l) => l.level === 30 && /^(container|pod sandbox|image) (created|exited|removed|ready|stopped|pulled)/.test(l.msg));
  assert.ok(objectLines.length >= 6, JSON.stringify(objectLines.map((l) => l.msg)));
  for (const l of objectLines) {
    assert.ok(l.id && l.name, `${l.msg} carries id and name: ${JSON.stringify(l)}`);
  }
  for (const l of lines()) assert.equal(l.daemon, 'tscri');
});
