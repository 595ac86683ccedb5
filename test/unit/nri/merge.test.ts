// Merging the adjustments and updates of several plugins: later plugins see
// earlier adjustments, removals are honoured, and two plugins setting the same
// thing is an error that names both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CreateCollector, UpdateCollector, Updates } from '../../../src/nri/merge.ts';
import { nriCodec } from '../../../src/nri/proto.ts';
import type { ContainerAdjustment, ContainerAdjustmentOut, ContainerUpdate, ContainerUpdateOut, LinuxResources } from '../../../src/nri/types.ts';

const adjustmentCodec = nriCodec<ContainerAdjustment, ContainerAdjustmentOut>('ContainerAdjustment');
const updateCodec = nriCodec<ContainerUpdate, ContainerUpdateOut>('ContainerUpdate');

/** An adjustment as a plugin's answer arrives: encoded and decoded, every field at its default. */
const adjustment = (input: ContainerAdjustment) => adjustmentCodec.decode(adjustmentCodec.encode(input));
const update = (input: ContainerUpdate) => updateCodec.decode(updateCodec.encode(input));
const resources = (fields: LinuxResources) => fields;

const answer = (adjust: ContainerAdjustmentOut, update: ContainerUpdateOut[] = []) => ({ adjust, update, evict: [] });

const container = () => ({
  id: 'c1',
  pod_sandbox_id: 'p1',
  name: 'app',
  env: ['PATH=/bin', 'KEEP=1'],
  mounts: [{ destination: '/old', source: '/x', type: 'bind', options: [] }],
});

test('adjustments of several plugins add up and later plugins see earlier ones', () => {
  const collector = new CreateCollector(container());
  collector.apply('10-a', answer(adjustment({ env: [{ key: 'FOO', value: 'bar' }], annotations: { 'a.io/x': '1' } })));
  assert.ok(collector.container.env!.includes('FOO=bar'), 'the next plugin sees FOO');
  collector.apply(
    '20-b',
    answer(
      adjustment({
        mounts: [{ destination: '/data', source: '/srv', type: 'bind', options: ['rbind', 'ro'] }],
        linux: { resources: resources({ memory: { limit: { value: 64 << 20 } } }) },
      }),
    ),
  );
  const { adjust } = collector.result();
  assert.deepEqual(adjust.env, [{ key: 'FOO', value: 'bar' }]);
  assert.deepEqual(adjust.annotations, { 'a.io/x': '1' });
  assert.deepEqual(
    adjust.mounts!.map((m) => m.destination),
    ['/data'],
  );
  assert.deepEqual(adjust.linux!.resources!.memory!.limit, { value: 64 << 20 });
  assert.deepEqual(collector.container.linux!.resources!.memory!.limit, { value: 64 << 20 });
});

test('two plugins setting the same field is an error naming both', () => {
  const collector = new CreateCollector(container());
  collector.apply('10-a', answer(adjustment({ env: [{ key: 'FOO', value: '1' }] })));
  assert.throws(
    () => collector.apply('20-b', answer(adjustment({ env: [{ key: 'FOO', value: '2' }] }))),
    /plugins "20-b" and "10-a" both tried to set environment variable "FOO"/,
  );

  const memory = (limit: number) => adjustment({ linux: { resources: resources({ memory: { limit: { value: limit } } }) } });
  const second = new CreateCollector(container());
  second.apply('10-a', answer(memory(1)));
  assert.throws(() => second.apply('20-b', answer(memory(2))), /"20-b" and "10-a" both tried to set memory limit/);

  const oom = new CreateCollector(container());
  oom.apply('10-a', answer(adjustment({ linux: { oom_score_adj: { value: 100 } } })));
  assert.throws(() => oom.apply('20-b', answer(adjustment({ linux: { oom_score_adj: { value: 200 } } }))), /OOM score adjustment/);
});

test('a removal marker removes an entry; the remover may set it again, others may not', () => {
  const collector = new CreateCollector(container());
  collector.apply('10-a', answer(adjustment({ env: [{ key: '-KEEP', value: '' }], mounts: [{ destination: '-/old', source: '', type: '', options: [] }] })));
  assert.ok(!collector.container.env!.some((e) => e.startsWith('KEEP=')));
  assert.deepEqual(collector.container.mounts, []);
  const { adjust } = collector.result();
  assert.deepEqual(
    adjust.env!.map((e) => e.key),
    ['-KEEP'],
  );
  assert.deepEqual(
    adjust.mounts!.map((m) => m.destination),
    ['-/old'],
  );
  assert.throws(() => collector.apply('20-b', answer(adjustment({ env: [{ key: 'KEEP', value: 'again' }] }))), /"20-b" and "10-a"/);

  const own = new CreateCollector(container());
  own.apply(
    '10-a',
    answer(
      adjustment({
        env: [
          { key: '-KEEP', value: '' },
          { key: 'KEEP', value: 'new' },
        ],
      }),
    ),
  );
  assert.ok(own.container.env!.includes('KEEP=new'));
  assert.deepEqual(own.result().adjust.env, [{ key: 'KEEP', value: 'new' }]);
});

test('hooks from several plugins accumulate without conflict', () => {
  const collector = new CreateCollector(container());
  const hooks = (path: string) => ({ create_runtime: [{ path }] });
  collector.apply('10-a', answer(adjustment({ hooks: hooks('/bin/a') })));
  collector.apply('20-b', answer(adjustment({ hooks: hooks('/bin/b') })));
  assert.deepEqual(
    collector.result().adjust.hooks!.create_runtime!.map((h) => h.path),
    ['/bin/a', '/bin/b'],
  );
});

test('a plugin may not update the container being created', () => {
  const collector = new CreateCollector(container());
  const own = update({ container_id: 'c1', linux: { resources: {} } });
  assert.throws(() => collector.apply('10-a', answer(adjustment({}), [own])), /while it is being created/);
});

test('updates of other containers merge per container; ignore_failure drops a conflicting one', () => {
  const updates = new Updates();
  const pids = (limit: number, ignore = false) => update({ container_id: 'other', linux: { resources: { pids: { limit } } }, ignore_failure: ignore });
  updates.add([pids(10)], '10-a');
  assert.throws(() => updates.add([pids(20)], '20-b'), /both tried to set pids limit/);
  updates.add([pids(30, true)], '30-c');
  assert.deepEqual(updates.list(), [{ container_id: 'other', ignore_failure: false, linux: { resources: { pids: { limit: 10 } } } }]);
});

test('an UpdateContainer answer changes the resources of the update in progress', () => {
  const collector = new UpdateCollector('c1', { cpu: { shares: { value: 2 } } });
  collector.apply('10-a', { update: [update({ container_id: 'c1', linux: { resources: { cpu: { quota: { value: 50000 }, cpus: '0' } } } })] });
  const result = collector.result();
  assert.deepEqual(result.resources.cpu, { shares: { value: 2 }, quota: { value: 50000 }, cpus: '0' });
  assert.deepEqual(result.updates, []);
});
