// Container mounts and the features behind them, end to end through the
// socket with real containers: recursive read-only bind mounts (a tmpfs
// below the mount must be read-only too), user namespaces refused where the
// runtime handler cannot give them, and what Status says about both; image
// volumes, image VOLUMEs, and CDI devices from spec files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import type { TestDaemon } from '../helpers/daemon.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { busyboxEntries, layer, pushImage } from '../helpers/images.ts';
import { startPodFixture, type PodFixture } from '../helpers/pod-fixture.ts';
import { waitGone } from '../helpers/wait.ts';

let f: PodFixture;
let registry: TestRegistry;
let d: TestDaemon;
let image: string;
let tag: string;
let tools: string;
let toolsId: string;
let withVolumes: string;
let work: string;
const tmpfsMounts: string[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tscri-mounts-'));
  await mkdir(join(work, 'cdi-etc'));
  await mkdir(join(work, 'cdi-run'));
  f = await startPodFixture({ name: 'mounts', config: `[cdi]\nspec_dirs = ["${join(work, 'cdi-etc')}", "${join(work, 'cdi-run')}"]\n` });
  ({ registry, d, image, tag } = f);
  // An image to mount as a volume: a directory, a file, and symlinks out of it and within it.
  const content = await layer([
    ...busyboxEntries(),
    { name: 'data/', type: 'directory' },
    { name: 'data/hello', body: 'from the image\n' },
    { name: 'data/file', body: 'x' },
    { name: 'out', type: 'symlink', linkname: '/' },
    { name: 'in', type: 'symlink', linkname: 'data' },
  ]);
  await pushImage(registry.url, 'mounts/tools', 'v1', { layers: [content] });
  tools = `${registry.host}/mounts/tools:v1`;
  toolsId = (await d.call('PullImage', { image: { image: tools } })).image_ref;
  // An image with VOLUMEs: one with content (owned by a user), one the image lacks, one a request mount covers.
  const db = await layer([
    ...busyboxEntries(),
    { name: 'var/lib/db/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
    { name: 'var/lib/db/seed', body: 'seeded\n', uid: 1000, gid: 1000 },
    { name: 'covered/', type: 'directory' },
    { name: 'covered/from-image', body: 'x' },
  ]);
  await pushImage(registry.url, 'mounts/db', 'v1', { layers: [db], config: { Volumes: { '/var/lib/db': {}, '/cache': {}, '/covered/': {} } } });
  withVolumes = `${registry.host}/mounts/db:v1`;
  await d.call('PullImage', { image: { image: withVolumes } });
});

after(async () => {
  await f?.cleanup();
  for (const m of tmpfsMounts.reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // already gone
    }
  }
  if (work) await rm(work, { recursive: true, force: true });
});

async function pod(name: string, extra: Record<string, any> = {}): Promise<{ id: string; config: any }> {
  const config = {
    metadata: { name, namespace: 'mounts', uid: `uid-${name}-${tag}`, attempt: 0 },
    hostname: name,
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    ...extra,
  };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  f.pods.push(pod_sandbox_id);
  return { id: pod_sandbox_id, config };
}

async function create(p: { id: string; config: any }, name: string, cfg: Record<string, any>): Promise<string> {
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id: p.id,
    config: { metadata: { name }, image: { image }, command: ['sleep', '300'], ...cfg },
    sandbox_config: p.config,
  });
  return container_id;
}

async function run(p: { id: string; config: any }, name: string, cfg: Record<string, any>): Promise<string> {
  const id = await create(p, name, cfg);
  await d.call('StartContainer', { container_id: id });
  return id;
}

async function sh(id: string, script: string): Promise<string> {
  const out = await d.call('ExecSync', { container_id: id, cmd: ['sh', '-c', script], timeout: 10 });
  return Buffer.from(out.stdout).toString() + Buffer.from(out.stderr).toString();
}

/** A host directory with a tmpfs mounted on its "sub" directory. */
async function hostDirWithSubmount(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(join(dir, 'sub'), { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tscri-test', join(dir, 'sub')]);
  tmpfsMounts.push(join(dir, 'sub'));
  return dir;
}

test('Status lists every handler and "" (the default) with what runc and the kernel support', async () => {
  const s = await d.call('Status', {});
  const features = Object.fromEntries(s.runtime_handlers.map((h: any) => [h.name, h.features]));
  assert.deepEqual(Object.keys(features).sort(), ['', 'crun', 'runc']);
  assert.deepEqual(features[''], features.runc);
  assert.equal(features.runc.recursive_read_only_mounts, true);
  assert.equal(features.runc.user_namespaces, false);
});

test('a recursive read-only mount makes mounts below it read-only too; a plain read-only one does not', async () => {
  const host = await hostDirWithSubmount('rro');
  const p = await pod('rro');
  const mount = (path: string, rro: boolean) => ({
    container_path: path,
    host_path: host,
    readonly: true,
    recursive_read_only: rro,
    propagation: 'PROPAGATION_PRIVATE',
  });
  const id = await run(p, 'rro', { mounts: [mount('/rro', true), mount('/ro', false)] });
  assert.match(await sh(id, 'touch /rro/sub/x 2>&1; echo rc=$?'), /Read-only file system[\s\S]*rc=1/);
  assert.match(await sh(id, 'touch /rro/y 2>&1; echo rc=$?'), /Read-only file system[\s\S]*rc=1/);
  assert.match(await sh(id, 'touch /ro/sub/x 2>&1; echo rc=$?'), /^rc=0$/m);
  assert.match(await sh(id, 'touch /ro/y 2>&1; echo rc=$?'), /Read-only file system[\s\S]*rc=1/);
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('a recursive read-only mount that is writable or not private is refused with INVALID_ARGUMENT', async () => {
  const host = await hostDirWithSubmount('rro-bad');
  const p = await pod('rro-bad');
  const bad = [
    { readonly: false, recursive_read_only: true, propagation: 'PROPAGATION_PRIVATE' },
    { readonly: true, recursive_read_only: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' },
    { readonly: true, recursive_read_only: true, propagation: 'PROPAGATION_BIDIRECTIONAL' },
  ];
  for (const [i, m] of bad.entries()) {
    await assert.rejects(
      create(p, `bad${i}`, { mounts: [{ container_path: '/mnt', host_path: host, ...m }] }),
      (e: any) => e.code === status.INVALID_ARGUMENT && /recursive read-only/.test(e.details),
    );
  }
  const { containers } = await d.call('ListContainers', {});
  assert.equal(containers.filter((c: any) => c.pod_sandbox_id === p.id).length, 0);
});

test("a pod asking for a user namespace is refused with FAILED_PRECONDITION, never run in the node's", async () => {
  const userns = (mode: string) => ({
    metadata: { name: `userns-${mode}`, namespace: 'mounts', uid: `uid-userns-${mode}-${tag}`, attempt: 0 },
    linux: {
      security_context: {
        namespace_options: {
          network: 'POD',
          pid: 'CONTAINER',
          ipc: 'POD',
          userns_options: { mode, uids: [{ host_id: 65536, container_id: 0, length: 65536 }], gids: [{ host_id: 65536, container_id: 0, length: 65536 }] },
        },
      },
    },
  });
  await assert.rejects(
    d.call('RunPodSandbox', { config: userns('POD') }),
    (e: any) => e.code === status.FAILED_PRECONDITION && /user namespaces .*not supported.*"runc".*idmapped mounts/.test(e.details),
  );
  await assert.rejects(d.call('RunPodSandbox', { config: userns('CONTAINER') }), (e: any) => e.code === status.INVALID_ARGUMENT);
  const { items } = await d.call('ListPodSandbox', {});
  assert.equal(items.filter((s: any) => s.metadata.name.startsWith('userns-')).length, 0);
  // The node's user namespace, as kubelet asks for hostUsers: true, works.
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config: userns('NODE') });
  f.pods.push(pod_sandbox_id);
  // A container asking for the pod's user namespace in a pod without one is refused too.
  const p = { id: pod_sandbox_id, config: userns('NODE') };
  await assert.rejects(
    create(p, 'userns', { linux: { security_context: { namespace_options: { userns_options: { mode: 'POD' } } } } }),
    (e: any) => e.code === status.FAILED_PRECONDITION && /user namespaces/.test(e.details),
  );
});

test('an image volume is read-only, executable, reports its image id, and mounts a sub path', async () => {
  const p = await pod('imagevol');
  const vol = (path: string, sub = '') => ({ container_path: path, readonly: true, image: { image: tools, user_specified_image: tools }, image_sub_path: sub });
  const id = await run(p, 'imagevol', { mounts: [vol('/tools'), vol('/data', 'data')] });
  assert.equal(await sh(id, 'cat /data/hello'), 'from the image\n');
  assert.match(await sh(id, '/tools/bin/busybox echo ran; touch /tools/x 2>&1; echo rc=$?'), /^ran\n[\s\S]*Read-only file system[\s\S]*rc=1/);
  const { status: s } = await d.call('ContainerStatus', { container_id: id });
  const mounts = Object.fromEntries(s.mounts.map((m: any) => [m.container_path, m]));
  assert.equal(mounts['/tools'].image.image_ref, toolsId);
  assert.equal(mounts['/data'].image.image_ref, toolsId);
  assert.match(toolsId, /^sha256:[0-9a-f]{64}$/);
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
});

test('image volumes that are writable, or whose sub path is missing, a file, a symlink or outside, are refused', async () => {
  const p = await pod('imagevol-bad');
  const cases: Array<[Record<string, any>, RegExp]> = [
    [{ readonly: false }, /must be read-only/],
    [{ image_sub_path: 'nothere' }, /does not exist/],
    [{ image_sub_path: 'data/file' }, /not a directory/],
    [{ image_sub_path: 'out' }, /symlink/],
    [{ image_sub_path: 'in' }, /symlink/],
    [{ image_sub_path: '../..' }, /escapes/],
  ];
  for (const [i, [extra, why]] of cases.entries()) {
    await assert.rejects(
      create(p, `bad${i}`, { mounts: [{ container_path: '/v', readonly: true, image: { image: tools }, ...extra }] }),
      (e: any) => e.code === status.INVALID_ARGUMENT && why.test(e.details),
    );
  }
  const { containers } = await d.call('ListContainers', {});
  assert.equal(containers.filter((c: any) => c.pod_sandbox_id === p.id).length, 0);
  // Nothing of the refused containers stays mounted.
  const mounts = execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' });
  assert.doesNotMatch(mounts, new RegExp(`${d.state}/containers/[0-9a-f]+/image-volumes`));
});

test('image VOLUMEs become anonymous volumes with the image content, outside the writable layer, removed with the container', async () => {
  const p = await pod('volumes');
  const covered = join(work, 'covered');
  await mkdir(covered);
  const id = await run(p, 'db', {
    image: { image: withVolumes },
    mounts: [{ container_path: '/covered', host_path: covered, propagation: 'PROPAGATION_PRIVATE' }],
  });
  assert.equal(await sh(id, 'cat /var/lib/db/seed; stat -c "%u:%g %a" /var/lib/db'), 'seeded\n1000:1000 750\n');
  await sh(id, 'echo written > /var/lib/db/new; echo c > /cache/c');
  const volumes = join(d.root, 'volumes', id);
  const dirs = await readdir(volumes);
  assert.deepEqual(dirs.sort(), ['0', '1'], 'one volume each for /cache and /var/lib/db; /covered is the request mount');
  assert.equal(await readFile(join(volumes, '1', 'new'), 'utf8'), 'written\n');
  assert.equal(await readFile(join(volumes, '0', 'c'), 'utf8'), 'c\n');
  assert.deepEqual(await readdir(covered), [], 'the request mount replaces the image VOLUME; nothing is copied into it');
  assert.match(await sh(id, 'ls /covered; grep -c " /var/lib/db " /proc/self/mountinfo'), /^1$/m);
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });
  await waitGone(volumes, 'the anonymous volumes go with the container');
});

test('CDI devices from CDI_devices and annotations bring their device nodes, env, mounts and hooks; unknown ones are INVALID_ARGUMENT', async () => {
  const lib = join(work, 'cdi-lib');
  await mkdir(lib);
  await writeFile(join(lib, 'libvendor.so'), 'vendor library\n');
  const marker = join(work, 'hook-ran');
  const cdiSpec = {
    cdiVersion: '0.6.0',
    kind: 'tscri.test/dev',
    containerEdits: { env: ['CDI_SPEC=yes'] },
    devices: [
      {
        name: 'null',
        containerEdits: {
          deviceNodes: [{ path: '/dev/cdi-null', hostPath: '/dev/null' }],
          env: ['CDI_DEVICE=null'],
          mounts: [{ hostPath: lib, containerPath: '/opt/vendor', options: ['ro', 'rbind'] }],
          hooks: [{ hookName: 'createRuntime', path: '/bin/sh', args: ['sh', '-c', `cat > /dev/null; echo ran >> ${marker}`] }],
          additionalGids: [4242],
        },
      },
      { name: 'zero', containerEdits: { deviceNodes: [{ path: '/dev/cdi-zero', hostPath: '/dev/zero', permissions: 'r' }] } },
    ],
  };
  await writeFile(join(work, 'cdi-etc', 'test.json'), JSON.stringify(cdiSpec));
  // Hostile neighbours: not JSON, wrong types, huge, YAML. They are skipped; the good spec still works.
  await writeFile(join(work, 'cdi-run', 'broken.json'), '{"cdiVersion": ');
  await writeFile(
    join(work, 'cdi-run', 'types.json'),
    JSON.stringify({ cdiVersion: '0.6.0', kind: 'tscri.test/dev', devices: [{ name: 'null', containerEdits: { deviceNodes: 'all' } }] }),
  );
  await writeFile(join(work, 'cdi-run', 'huge.json'), Buffer.alloc(5 * 1024 * 1024, 0x5b));
  await writeFile(join(work, 'cdi-run', 'vendor.yaml'), 'cdiVersion: "0.6.0"\nkind: tscri.test/yaml\n');

  const p = await pod('cdi');
  const id = await run(p, 'cdi', { CDI_devices: [{ name: 'tscri.test/dev=null' }], annotations: { 'cdi.k8s.io/test-plugin_zero': 'tscri.test/dev=zero' } });
  const out = await sh(
    id,
    'ls -l /dev/cdi-null /dev/cdi-zero | cut -c1; echo x > /dev/cdi-null && echo wrote; head -c 4 /dev/cdi-zero | wc -c; echo $CDI_SPEC $CDI_DEVICE; cat /opt/vendor/libvendor.so; grep ^Groups: /proc/self/status',
  );
  assert.match(out, /^c\nc\nwrote\n4\nyes null\nvendor library\nGroups:.*\b4242\b/);
  assert.equal(await readFile(marker, 'utf8'), 'ran\n');
  await d.call('StopContainer', { container_id: id, timeout: 0 });
  await d.call('RemoveContainer', { container_id: id });

  await assert.rejects(
    create(p, 'cdi-unknown', { CDI_devices: [{ name: 'tscri.test/dev=nosuch' }] }),
    (e: any) =>
      e.code === status.INVALID_ARGUMENT &&
      /CDI device tscri\.test\/dev=nosuch is not defined/.test(e.details) &&
      /vendor\.yaml/.test(e.details) &&
      /broken\.json/.test(e.details),
  );
  await assert.rejects(
    create(p, 'cdi-yaml', { annotations: { 'cdi.k8s.io/x': 'tscri.test/yaml=a' } }),
    (e: any) => e.code === status.INVALID_ARGUMENT && /YAML spec files are not read/.test(e.details),
  );
  await assert.rejects(
    create(p, 'cdi-badname', { CDI_devices: [{ name: '../../etc/passwd' }] }),
    (e: any) => e.code === status.INVALID_ARGUMENT && /not a valid device name/.test(e.details),
  );
  const { containers } = await d.call('ListContainers', { filter: { pod_sandbox_id: p.id } });
  assert.equal(containers.length, 0);
  assert.ok((await d.call('Version', {})).version, 'the daemon serves on');
});
