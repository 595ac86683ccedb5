// CDI devices: names, spec files read defensively from prioritised
// directories, resolution and the edits applied to an OCI spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addCdiDevices,
  applyCdiEdits,
  loadCdiRegistry,
  MAX_SPEC_BYTES,
  parseCdiSpec,
  parseDeviceName,
  requestedCdiDevices,
  resolveCdiDevices,
} from '../../../src/oci/cdi.ts';
import { DomainError } from '../../../src/errors.ts';
import type { Spec } from '../../../src/oci/types.ts';

const kindOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return `${err.kind}: ${err.message}`;
    return `other: ${(err as Error).message}`;
  }
  return 'passed';
};

const spec = (kind: string, devices: object[], edits: object = {}) => JSON.stringify({ cdiVersion: '0.6.0', kind, devices, containerEdits: edits });

test('device names: vendor.com/class=name', () => {
  assert.deepEqual(parseDeviceName('vendor.com/gpu=0'), { kind: 'vendor.com/gpu', name: '0' });
  assert.deepEqual(parseDeviceName('nvidia.com/gpu=GPU-1a:2_b.c'), { kind: 'nvidia.com/gpu', name: 'GPU-1a:2_b.c' });
  for (const bad of [
    'gpu0',
    'vendor.com/gpu',
    'vendor.com=gpu/x',
    '/gpu=0',
    'vendor.com/=0',
    'vendor.com/gpu=',
    'ven dor/gpu=0',
    'vendor.com/gpu=../0',
    'v/c=a\0b',
  ]) {
    assert.equal(typeof parseDeviceName(bad), 'string', bad);
  }
});

test('requested devices: CDI_devices and cdi.k8s.io/ annotations, each once; bad names are INVALID_ARGUMENT', () => {
  assert.deepEqual(
    requestedCdiDevices([{ name: 'a.com/x=1' }], { 'cdi.k8s.io/plugin_dev': 'a.com/x=2, a.com/x=1,', other: 'b.com/y=3', 'cdi.k8s.io/b': 'b.com/y=4' }),
    ['a.com/x=1', 'b.com/y=4', 'a.com/x=2'],
  );
  assert.deepEqual(requestedCdiDevices(undefined, undefined), []);
  assert.match(
    kindOf(() => requestedCdiDevices([{ name: 'nonsense' }], {})),
    /^InvalidArgument: CDI device "nonsense" is not a valid device name/,
  );
  assert.match(
    kindOf(() => requestedCdiDevices([], { 'cdi.k8s.io/x': 'a.com/x=../../etc' })),
    /^InvalidArgument/,
  );
  assert.match(
    kindOf(() =>
      requestedCdiDevices(
        Array.from({ length: 200 }, (_, i) => ({ name: `a.com/x=${i}` })),
        {},
      ),
    ),
    /^InvalidArgument: .*at most/,
  );
});

test('parseCdiSpec: wrong types anywhere make the whole file invalid', () => {
  const ok = parseCdiSpec(spec('a.com/x', [{ name: 'd', containerEdits: { env: ['A=1'], deviceNodes: [{ path: '/dev/null' }] } }], { env: ['S=1'] }), 'f.json');
  assert.equal(ok.kind, 'a.com/x');
  assert.deepEqual(ok.devices.get('d')!.env, ['A=1']);
  const bad: Array<[string, RegExp]> = [
    ['', /not JSON/],
    ['[]', /not a JSON object/],
    ['{"cdiVersion":"0.6.0","kind":"a.com/x","devices":[]}', /at least one/],
    ['{"cdiVersion":1,"kind":"a.com/x","devices":[{"name":"d"}]}', /cdiVersion/],
    ['{"cdiVersion":"0.6.0","kind":"nokind","devices":[{"name":"d"}]}', /kind/],
    ['{"cdiVersion":"0.6.0","kind":"a.com/x","devices":{"name":"d"}}', /devices must be a list/],
    [spec('a.com/x', [{ name: 'd' }, { name: 'd' }]), /defined twice/],
    [spec('a.com/x', [{ name: 'bad name' }]), /not a valid device name/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { env: 'A=1' } }]), /env must be a list/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { env: ['NOEQUALS'] } }]), /NAME=value/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { deviceNodes: [{ path: 'dev/x' }] } }]), /absolute/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { deviceNodes: [{ path: '/dev/x', major: -1 }] } }]), /whole number/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { deviceNodes: [{ path: '/dev/x', major: 1.5 }] } }]), /whole number/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { deviceNodes: [{ path: '/dev/x', type: 'z' }] } }]), /type/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { deviceNodes: [{ path: '/dev/x', permissions: 'rwx' }] } }]), /permissions/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { mounts: [{ hostPath: '/a' }] } }]), /containerPath/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { hooks: [{ hookName: 'whenever', path: '/bin/true' }] } }]), /hookName/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { hooks: [{ hookName: 'prestart', path: '/bin/true', args: [1] }] } }]), /args/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { additionalGids: ['5'] } }]), /additionalGids/],
    [spec('a.com/x', [{ name: 'd', containerEdits: { mounts: [{ hostPath: '/a\u0000b', containerPath: '/b' }] } }]), /string/],
    ['['.repeat(200_000) + ']'.repeat(200_000), /not JSON|not a JSON object/],
  ];
  for (const [text, why] of bad) assert.throws(() => parseCdiSpec(text, 'f.json'), why, text.slice(0, 60));
});

test('loadCdiRegistry: later directories win, conflicts within one are unusable, broken and YAML files are named', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'tscri-cdi-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const etc = join(work, 'etc');
  const run = join(work, 'run');
  await mkdir(etc);
  await mkdir(run);
  await writeFile(
    join(etc, 'a.json'),
    spec('a.com/x', [
      { name: 'static', containerEdits: { env: ['FROM=etc'] } },
      { name: 'over', containerEdits: { env: ['FROM=etc'] } },
    ]),
  );
  await writeFile(join(run, 'a.json'), spec('a.com/x', [{ name: 'over', containerEdits: { env: ['FROM=run'] } }]));
  await writeFile(join(run, 'c1.json'), spec('c.com/x', [{ name: 'twice' }]));
  await writeFile(join(run, 'c2.json'), spec('c.com/x', [{ name: 'twice' }]));
  await writeFile(join(run, 'broken.json'), '{"cdiVersion":"0.6.0","kind":"b.com/x","devices":[{"name":1}]}');
  await writeFile(join(run, 'huge.json'), Buffer.alloc(MAX_SPEC_BYTES + 10, 0x20));
  await writeFile(join(run, 'dev.yaml'), 'cdiVersion: 0.6.0\n');
  await writeFile(join(run, 'notes.txt'), 'ignored');
  await mkdir(join(run, 'dir.json'));
  await symlink('/dev/zero', join(run, 'zero.json'));
  const registry = await loadCdiRegistry([etc, run, join(work, 'missing')]);
  assert.deepEqual([...registry.devices.keys()].sort(), ['a.com/x=over', 'a.com/x=static']);
  assert.deepEqual(registry.devices.get('a.com/x=over')!.devices.get('over')!.env, ['FROM=run']);
  assert.deepEqual(registry.conflicts.get('c.com/x=twice'), [join(run, 'c1.json'), join(run, 'c2.json')]);
  assert.match(registry.problems.join('\n'), /broken\.json: devices\[0\]\.name must be a string/);
  assert.match(registry.problems.join('\n'), /huge\.json: larger than 4 MiB/);
  assert.deepEqual(registry.yaml, [join(run, 'dev.yaml')]);

  const dirs = [etc, run];
  assert.match(
    kindOf(() => resolveCdiDevices(['a.com/x=nosuch'], registry, dirs)),
    /^InvalidArgument: CDI device a\.com\/x=nosuch is not defined in any CDI spec file in .*etc, .*run \(YAML spec files are not read, only JSON: .*dev\.yaml; spec files skipped: .*broken\.json/,
  );
  assert.match(
    kindOf(() => resolveCdiDevices(['c.com/x=twice'], registry, dirs)),
    /^InvalidArgument: CDI device c\.com\/x=twice is defined by more than one spec file/,
  );
  const resolved = resolveCdiDevices(['a.com/x=static', 'a.com/x=over'], registry, dirs);
  // Each spec's own edits once, then each device's.
  assert.equal(resolved.edits.length, 4);
});

test('resolveCdiDevices: device nodes take the host device numbers unless the spec gives them', async () => {
  const registry = {
    devices: new Map(),
    conflicts: new Map(),
    problems: [],
    yaml: [],
  } as any;
  const s = parseCdiSpec(
    spec('a.com/x', [
      {
        name: 'n',
        containerEdits: {
          deviceNodes: [
            { path: '/dev/mynull', hostPath: '/dev/null', permissions: 'rw' },
            { path: '/dev/fake', type: 'c', major: 240, minor: 7, fileMode: 0o600, uid: 5, gid: 6 },
          ],
        },
      },
      { name: 'missing', containerEdits: { deviceNodes: [{ path: '/dev/not-on-this-node' }] } },
    ]),
    'f.json',
  );
  registry.devices.set('a.com/x=n', s);
  registry.devices.set('a.com/x=missing', s);
  const { devices } = resolveCdiDevices(['a.com/x=n'], registry, []);
  assert.deepEqual(devices[0], {
    path: '/dev/null',
    containerPath: '/dev/mynull',
    type: 'c',
    major: 1,
    minor: 3,
    fileMode: 0o666,
    uid: 0,
    gid: 0,
    permissions: 'rw',
  });
  assert.deepEqual(devices[1], {
    path: '/dev/fake',
    containerPath: '/dev/fake',
    type: 'c',
    major: 240,
    minor: 7,
    fileMode: 0o600,
    uid: 5,
    gid: 6,
    permissions: 'rwm',
  });
  assert.match(
    kindOf(() => resolveCdiDevices(['a.com/x=missing'], registry, [])),
    /^FailedPrecondition: CDI device node \/dev\/not-on-this-node/,
  );
});

test('applyCdiEdits: env overrides by name, mounts replace and sort by depth, hooks and groups are added', () => {
  const s: Spec = {
    ociVersion: '1.0.2',
    process: { user: { uid: 0, gid: 0, additionalGids: [0] }, args: ['sh'], cwd: '/', env: ['PATH=/bin', 'A=old'] },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/data', type: 'bind', source: '/x' },
    ],
  };
  const edits = parseCdiSpec(
    spec('a.com/x', [
      {
        name: 'd',
        containerEdits: {
          env: ['A=new', 'B=1'],
          mounts: [
            { hostPath: '/h/lib', containerPath: '/usr/lib/vendor', options: ['ro', 'bind'] },
            { hostPath: '/h/data', containerPath: '/data' },
          ],
          hooks: [{ hookName: 'createContainer', path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'x'], timeout: 5 }],
          additionalGids: [44, 0],
        },
      },
    ]),
    'f.json',
  ).devices.get('d')!;
  applyCdiEdits(s, [edits]);
  assert.deepEqual(s.process!.env, ['PATH=/bin', 'A=new', 'B=1']);
  assert.deepEqual(
    s.mounts!.map((m) => [m.destination, m.source]),
    [
      ['/proc', 'proc'],
      ['/data', '/h/data'],
      ['/usr/lib/vendor', '/h/lib'],
    ],
  );
  assert.deepEqual(s.mounts![1]!.options, ['rbind', 'rprivate']);
  assert.deepEqual(s.hooks, { createContainer: [{ path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'x'], timeout: 5 }] });
  assert.deepEqual(s.process!.user.additionalGids, [0, 44]);
});

test('addCdiDevices: devices an NRI plugin names join a built spec with their cgroup rule and edits; unknown ones are refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-cdi-nri-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'v.json'),
    spec('vendor.com/dev', [{ name: 'x', containerEdits: { deviceNodes: [{ path: '/dev/xnull', hostPath: '/dev/null' }], env: ['FROM_CDI=1'] } }]),
  );
  const built: Spec = {
    ociVersion: '1.0.2',
    process: { user: { uid: 0, gid: 0 }, args: ['sh'], cwd: '/', env: ['A=1'] },
    linux: { devices: [], resources: { devices: [{ allow: false, access: 'rwm' }] } },
  };
  await addCdiDevices(built, ['vendor.com/dev=x'], [dir]);
  assert.deepEqual(built.linux?.devices, [{ path: '/dev/xnull', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }]);
  assert.deepEqual(built.linux?.resources?.devices?.at(-1), { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' });
  assert.deepEqual(built.process?.env, ['A=1', 'FROM_CDI=1']);
  await assert.rejects(
    addCdiDevices(built, ['vendor.com/dev=nope'], [dir]),
    (e: unknown) => e instanceof DomainError && e.kind === 'InvalidArgument' && /vendor.com\/dev=nope/.test(e.message),
  );
});
