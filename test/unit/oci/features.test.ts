// Runtime handler features from the OCI features document, and the user
// namespace check that refuses what a handler cannot give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkUserNamespace, parseFeatures, probeFeatures, RuntimeFeatures } from '../../../src/oci/features.ts';
import { DomainError } from '../../../src/errors.ts';

const runc115 = JSON.stringify({
  ociVersionMin: '1.0.0',
  mountOptions: ['bind', 'rbind', 'ro', 'rro', 'rrw'],
  linux: { namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'] },
});
const runc12 = JSON.stringify({
  mountOptions: ['rro', 'idmap', 'ridmap'],
  linux: { namespaces: ['user', 'mount'], mountExtensions: { idmap: { enabled: true } } },
});

test('parseFeatures: rro needs the option and Linux 5.12; user namespaces need userns and idmapped mounts', () => {
  assert.deepEqual({ ...parseFeatures(runc115, '6.1.0-18-amd64'), notes: [] }, { recursiveReadOnlyMounts: true, runtimeUserNamespaces: false, notes: [] });
  assert.match(parseFeatures(runc115, '6.1.0').notes.join(';'), /idmapped mounts/);
  assert.equal(parseFeatures(runc115, '5.10.0-28-amd64').recursiveReadOnlyMounts, false);
  assert.match(parseFeatures(runc115, '5.10.0').notes.join(';'), /Linux 5\.12/);
  assert.deepEqual(parseFeatures(runc12, '6.8.0').runtimeUserNamespaces, true);
  assert.equal(parseFeatures(runc12, '6.8.0').recursiveReadOnlyMounts, true);
});

test('parseFeatures: a hostile or broken document supports nothing and never throws', () => {
  for (const text of [
    '',
    'not json',
    'null',
    '[]',
    '"rro"',
    '{"mountOptions":"rro"}',
    '{"mountOptions":[1,{"rro":true}],"linux":"user"}',
    '{"linux":{"namespaces":"user","mountExtensions":{"idmap":{"enabled":"true"}}}}',
    '{"linux":{"namespaces":["user"],"mountExtensions":{"idmap":[true]}}}',
    '{"__proto__":{"mountOptions":["rro"]}}',
    '['.repeat(100_000),
  ]) {
    const f = parseFeatures(text, '6.1.0');
    assert.equal(f.recursiveReadOnlyMounts, false, text.slice(0, 40));
    assert.equal(f.runtimeUserNamespaces, false, text.slice(0, 40));
  }
});

test('probeFeatures: a runtime that fails or is missing supports nothing', async () => {
  const missing = await probeFeatures('/nonexistent/runtime');
  assert.equal(missing.recursiveReadOnlyMounts, false);
  assert.match(missing.notes[0]!, /features failed/);
  assert.equal((await probeFeatures('/bin/false')).runtimeUserNamespaces, false);
});

test('RuntimeFeatures: "" is the default handler, and Status lists it', () => {
  const f = new RuntimeFeatures('runc', [
    ['runc', parseFeatures(runc115, '6.1.0')],
    ['crun', parseFeatures('x')],
  ]);
  assert.equal(f.get('').recursiveReadOnlyMounts, true);
  assert.equal(f.get('crun').recursiveReadOnlyMounts, false);
  assert.equal(f.get('nosuch').recursiveReadOnlyMounts, false);
  assert.deepEqual(f.names(), ['runc', 'crun', '']);
  assert.match(f.userNamespacesRefusal(''), /"runc".*idmapped mounts/);
});

test('checkUserNamespace: absent and NODE pass; POD is refused where unsupported; other modes are invalid', () => {
  const f = new RuntimeFeatures('runc', [['runc', parseFeatures(runc115, '6.1.0')]]);
  checkUserNamespace(null, '', f);
  checkUserNamespace(undefined, '', f);
  checkUserNamespace({ mode: 'NODE' }, '', f);
  const kind = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof DomainError);
      return `${err.kind}: ${err.message}`;
    }
    return 'passed';
  };
  assert.match(
    kind(() => checkUserNamespace({ mode: 'POD' }, '', f)),
    /^FailedPrecondition: user namespaces .*not supported.*"runc"/,
  );
  assert.match(
    kind(() => checkUserNamespace({}, 'runc', f)),
    /^FailedPrecondition/,
  );
  assert.match(
    kind(() => checkUserNamespace({ mode: 'CONTAINER' }, '', f)),
    /^InvalidArgument: .*CONTAINER/,
  );
  assert.match(
    kind(() => checkUserNamespace({ mode: 'TARGET' }, '', f)),
    /^InvalidArgument/,
  );
});
