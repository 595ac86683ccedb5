import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outcomeOf, PINNED_DIGEST_SPEC, specName } from '../../critest/run.ts';

const spec = (hierarchy: string[], leaf: string, state: string, message?: string, type = 'It') => ({
  ContainerHierarchyTexts: hierarchy,
  LeafNodeText: leaf,
  LeafNodeType: type,
  State: state,
  ...(message === undefined ? {} : { Failure: { Message: message } }),
});

test('the report sorts into passed, failed, self-skipped with reason, and filtered specs', () => {
  const outcome = outcomeOf([
    {
      SpecReports: [
        spec([], '', 'passed', undefined, 'BeforeSuite'),
        spec(
          ['[k8s.io] PodSandbox', 'runtime should support metrics operations'],
          'runtime should support returning metrics descriptors [Conformance]',
          'passed',
        ),
        spec(['[k8s.io] Image Manager'], 'public image with digest should be pulled and removed [Conformance]', 'failed', 'failed to pull image\nmore'),
        spec(['[k8s.io] AppArmor'], 'should work', 'skipped', 'AppArmor is disabled on this host\n'),
        spec(['[k8s.io] Benchmark'], 'runs', 'skipped'),
        spec(['[k8s.io] Streaming'], 'times out', 'timedout'),
      ],
    },
  ]);
  assert.deepEqual(outcome.passed, [
    '[k8s.io] PodSandbox runtime should support metrics operations runtime should support returning metrics descriptors [Conformance]',
  ]);
  assert.deepEqual(
    outcome.failed.map((f) => f.name),
    [PINNED_DIGEST_SPEC, '[k8s.io] Streaming times out'],
  );
  assert.equal(outcome.failed[1]!.message, 'timedout');
  assert.deepEqual(outcome.skipped, [{ name: '[k8s.io] AppArmor should work', reason: 'AppArmor is disabled on this host' }]);
  assert.equal(outcome.filtered, 1);
  assert.deepEqual(outcomeOf([{ SpecReports: null }]), { passed: [], failed: [], skipped: [], filtered: 0 });
});

test('only the pinned-digest spec is allowed to fail, by its exact name', () => {
  assert.equal(
    specName({ ContainerHierarchyTexts: ['[k8s.io] Image Manager'], LeafNodeText: 'public image with digest should be pulled and removed [Conformance]' }),
    PINNED_DIGEST_SPEC,
  );
  assert.notEqual(
    specName({ ContainerHierarchyTexts: ['[k8s.io] Image Manager'], LeafNodeText: 'public image without tag should be pulled and removed [Conformance]' }),
    PINNED_DIGEST_SPEC,
  );
});
