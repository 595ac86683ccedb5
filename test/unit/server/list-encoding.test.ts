import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { LOADER_OPTIONS, loadServices } from '../../../src/server/server.ts';

const plain = protoLoader.loadSync(fileURLToPath(new URL('../../../proto/api.proto', import.meta.url)), LOADER_OPTIONS)[
  'runtime.v1.RuntimeService'
] as grpc.ServiceDefinition;
const served = loadServices().runtime;

const container = (i: number, state = 'CONTAINER_RUNNING') => ({
  id: `${i}`.padStart(64, 'a'),
  pod_sandbox_id: 'b'.repeat(64),
  metadata: { name: `c${i}`, attempt: i },
  image: { image: 'registry/busybox:v1', annotations: { a: 'b' }, user_specified_image: 'busybox', runtime_handler: '', image_ref: 'sha256:1' },
  image_ref: 'sha256:1',
  image_id: 'sha256:1',
  state,
  created_at: 1_700_000_000_000_000_000 + i,
  labels: { 'io.kubernetes.pod.name': `p${i}`, app: 'x' },
  annotations: { 'io.kubernetes.container.hash': `${i}` },
});
const pod = (i: number) => ({
  id: `${i}`.padStart(64, 'c'),
  metadata: { name: `p${i}`, uid: `u${i}`, namespace: 'ns', attempt: 0 },
  state: i % 2 ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
  created_at: 1_700_000_000_000_000_000 + i,
  labels: { app: `${i}` },
  annotations: {},
  runtime_handler: 'runc',
});

for (const [rpc, field, make] of [
  ['ListContainers', 'containers', container],
  ['ListPodSandbox', 'items', pod],
] as const) {
  test(`${rpc}: the answer from kept encodings is byte for byte the plain encoding, and decodes back`, () => {
    const ours = served[rpc]!;
    const reference = plain[rpc]!;
    for (const n of [0, 1, 2, 100]) {
      const frozen = Array.from({ length: n }, (_, i) => Object.freeze(make(i)));
      const loose = Array.from({ length: n }, (_, i) => make(i));
      const expected = reference.responseSerialize({ [field]: loose });
      assert.deepEqual(ours.responseSerialize({ [field]: frozen }), expected);
      // Twice: the second answer comes from kept bytes.
      assert.deepEqual(ours.responseSerialize({ [field]: frozen }), expected);
      assert.deepEqual(ours.responseSerialize({ [field]: loose }), expected);
      assert.equal((reference.responseDeserialize(ours.responseSerialize({ [field]: frozen })) as any)[field].length, n);
    }
  });
}

test('ListContainers: a new object for a changed container is encoded anew, and unfrozen objects are never kept', () => {
  const ours = served.ListContainers!;
  const decode = (b: Buffer) => (plain.ListContainers!.responseDeserialize(b) as any).containers.map((c: any) => c.state);
  const running = Object.freeze(container(1));
  assert.deepEqual(decode(ours.responseSerialize({ containers: [running] })), ['CONTAINER_RUNNING']);
  const exited = Object.freeze(container(1, 'CONTAINER_EXITED'));
  assert.deepEqual(decode(ours.responseSerialize({ containers: [running, exited] })), ['CONTAINER_RUNNING', 'CONTAINER_EXITED']);
  const loose = container(2);
  assert.deepEqual(decode(ours.responseSerialize({ containers: [loose] })), ['CONTAINER_RUNNING']);
  loose.state = 'CONTAINER_EXITED';
  assert.deepEqual(decode(ours.responseSerialize({ containers: [loose] })), ['CONTAINER_EXITED']);
});
