// Checkpoint archives without CRIU: the rootfs diff of an overlay upper dir
// (whiteouts and opaque dirs back to OCI entries, and onto a new upper dir
// again), archives written from a directory, config.dump/spec.dump read
// back, archives that try to write outside the restore directory, and how a
// restore request is merged with the archived configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import { ArchiveError, extractForRestore, readArchiveMetadata, writeArchive } from '../../../src/checkpoint/archive.ts';
import { applyRootfsDiff, excludedPaths, writeRootfsDiff } from '../../../src/checkpoint/rootfs-diff.ts';
import { RestoreError, restoredConfig, validConfigDump } from '../../../src/checkpoint/metadata.ts';
import { lgetxattr, lsetxattr, mknod, S_IFCHR } from '../../../src/snapshot/syscalls.ts';
import { LayerError } from '../../../src/snapshot/layer.ts';
import { containerConfig } from '../container/service-fixture.ts';

async function tempDir(t: any): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-ckpt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function entries(file: string): Promise<Map<string, { type: string; body: string; linkname?: string }>> {
  const found = new Map<string, { type: string; body: string; linkname?: string }>();
  const tar = extract();
  tar.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.push(c as Buffer));
    stream.on('end', () => {
      found.set(header.name, { type: header.type ?? '', body: Buffer.concat(chunks).toString(), ...(header.linkname ? { linkname: header.linkname } : {}) });
      next();
    });
  });
  await pipeline(createReadStream(file), tar);
  return found;
}

type Raw = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; body?: string | Buffer; linkname?: string };

async function tarFile(file: string, items: Raw[]): Promise<void> {
  const p = pack();
  for (const e of items)
    (p.entry as any)(
      { name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, linkname: e.linkname } as any,
      e.type && e.type !== 'file' ? undefined : (e.body ?? ''),
    );
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  await writeFile(file, Buffer.concat(chunks));
}

test('the rootfs diff turns overlay whiteouts and opaque dirs into OCI entries and back', async (t) => {
  const dir = await tempDir(t);
  const upper = join(dir, 'upper');
  await mkdir(join(upper, 'etc'), { recursive: true });
  await writeFile(join(upper, 'data.txt'), 'before\n', { mode: 0o640 });
  await link(join(upper, 'data.txt'), join(upper, 'hard.txt'));
  await symlink('data.txt', join(upper, 'sym'));
  mknod(join(upper, 'etc', 'group'), S_IFCHR, 0, 0);
  await mkdir(join(upper, 'cache'));
  lsetxattr(join(upper, 'cache'), 'trusted.overlay.opaque', Buffer.from('y'));
  await writeFile(join(upper, 'cache', 'new'), 'n');
  // Mount points the runtime made: never part of the diff.
  await mkdir(join(upper, 'proc'));
  await writeFile(join(upper, 'etc', 'hosts'), '');

  const tarPath = join(dir, 'rootfs-diff.tar');
  await writeRootfsDiff(upper, tarPath, excludedPaths({ mounts: [{ destination: '/proc' }, { destination: '/etc/hosts' }] }));
  const found = await entries(tarPath);
  assert.deepEqual([...found.keys()].sort(), ['cache/', 'cache/.wh..wh..opq', 'cache/new', 'data.txt', 'etc/', 'etc/.wh.group', 'hard.txt', 'sym']);
  assert.equal(found.get('etc/.wh.group')!.type, 'file');
  assert.equal(found.get('data.txt')!.body, 'before\n');
  assert.equal(found.get('hard.txt')!.type, 'link');
  assert.equal(found.get('hard.txt')!.linkname, 'data.txt');
  assert.equal(found.get('sym')!.linkname, 'data.txt');

  const fresh = join(dir, 'fresh');
  await mkdir(fresh);
  await applyRootfsDiff(tarPath, fresh);
  const whiteout = await lstat(join(fresh, 'etc', 'group'));
  assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0, 'the deleted file is an overlay whiteout again');
  assert.equal(lgetxattr(join(fresh, 'cache'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.equal(await readFile(join(fresh, 'data.txt'), 'utf8'), 'before\n');
  assert.equal((await stat(join(fresh, 'data.txt'))).mode & 0o777, 0o640);
  assert.equal((await stat(join(fresh, 'hard.txt'))).ino, (await stat(join(fresh, 'data.txt'))).ino);
  assert.equal(await readlink(join(fresh, 'sym')), 'data.txt');
  assert.deepEqual((await readdir(fresh)).sort(), ['cache', 'data.txt', 'etc', 'hard.txt', 'sym']);
});

test('an archive is written whole from a directory, owner-only, and its metadata reads back', async (t) => {
  const dir = await tempDir(t);
  const work = join(dir, 'work');
  await mkdir(join(work, 'checkpoint'), { recursive: true });
  await writeFile(join(work, 'checkpoint', 'pages-1.img'), Buffer.alloc(10_000, 7));
  await writeFile(join(work, 'checkpoint', 'inventory.img'), 'inv');
  await writeFile(join(work, 'config.dump'), JSON.stringify({ id: 'abc', rootfsImageName: 'busybox' }));
  await writeFile(join(work, 'spec.dump'), JSON.stringify({ ociVersion: '1.0.2' }));
  await writeFile(join(work, 'rootfs-diff.tar'), Buffer.alloc(1024));
  const location = join(dir, 'out', 'ckpt.tar');
  await mkdir(join(dir, 'out'));
  await writeArchive(work, ['checkpoint', 'config.dump', 'spec.dump', 'rootfs-diff.tar', 'stats-dump'], location);
  assert.equal((await stat(location)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(join(dir, 'out')), ['ckpt.tar'], 'no temporary file is left');
  const found = await entries(location);
  assert.deepEqual([...found.keys()], ['checkpoint/', 'checkpoint/inventory.img', 'checkpoint/pages-1.img', 'config.dump', 'spec.dump', 'rootfs-diff.tar']);
  assert.deepEqual(await readArchiveMetadata(location), { config: { id: 'abc', rootfsImageName: 'busybox' }, spec: { ociVersion: '1.0.2' } });

  const restore = join(dir, 'restore');
  await mkdir(restore);
  assert.deepEqual(await extractForRestore(location, restore), { hasRootfsDiff: true });
  assert.deepEqual((await readdir(restore)).sort(), ['checkpoint', 'rootfs-diff.tar']);
  assert.equal((await readFile(join(restore, 'checkpoint', 'pages-1.img'))).length, 10_000);

  // A failed write leaves nothing at the location.
  await assert.rejects(writeArchive(join(dir, 'nosuch'), ['checkpoint'], join(dir, 'nosuchdir', 'x.tar')));
  assert.deepEqual(await readdir(join(dir, 'out')), ['ckpt.tar']);
});

test('archives without metadata, or with entries that leave the restore directory, are refused', async (t) => {
  const dir = await tempDir(t);
  const marker = join(dir, 'escaped');
  const restore = join(dir, 'a', 'b', 'restore');
  await mkdir(restore, { recursive: true });

  const noSpec = join(dir, 'nospec.tar');
  await tarFile(noSpec, [{ name: 'config.dump', body: '{}' }]);
  await assert.rejects(readArchiveMetadata(noSpec), (e) => e instanceof ArchiveError && /no spec\.dump/.test(e.message));
  const notJson = join(dir, 'notjson.tar');
  await tarFile(notJson, [
    { name: 'config.dump', body: '{' },
    { name: 'spec.dump', body: '{}' },
  ]);
  await assert.rejects(readArchiveMetadata(notJson), (e) => e instanceof ArchiveError && /not JSON/.test(e.message));
  const notTar = join(dir, 'not.tar');
  await writeFile(notTar, 'hello, this is not a tar archive at all'.repeat(20));
  await assert.rejects(readArchiveMetadata(notTar), ArchiveError);

  const hostile: Array<[string, Raw[]]> = [
    ['dotdot', [{ name: '../../../escaped', body: 'x' }]],
    ['inside-dotdot', [{ name: 'checkpoint/../../../escaped', body: 'x' }]],
    [
      'symlink',
      [
        { name: 'checkpoint/', type: 'directory' },
        { name: 'checkpoint/up', type: 'symlink', linkname: '../../..' },
        { name: 'checkpoint/up/escaped', body: 'x' },
      ],
    ],
    [
      'hardlink',
      [
        { name: 'checkpoint/', type: 'directory' },
        { name: 'checkpoint/l', type: 'link', linkname: '/etc/passwd' },
      ],
    ],
    ['diff-dir', [{ name: 'rootfs-diff.tar/', type: 'directory' }]],
  ];
  for (const [name, items] of hostile) {
    const file = join(dir, `${name}.tar`);
    await tarFile(file, items);
    await assert.rejects(extractForRestore(file, restore), ArchiveError, name);
    assert.equal(existsSync(marker), false, `${name} wrote outside`);
    await rm(restore, { recursive: true, force: true });
    await mkdir(restore);
  }

  // The rootfs diff is unpacked like an image layer: it cannot leave the upper dir either.
  const diff = join(dir, 'diff.tar');
  await tarFile(diff, [{ name: '../../escaped', body: 'x' }]);
  await assert.rejects(applyRootfsDiff(diff, restore), LayerError);
  assert.equal(existsSync(marker), false);
});

test('a restore takes devices, security context and namespaces from the request only, never from the archive', () => {
  const hostile = containerConfig('counter', ['sh'], {
    devices: [{ host_path: '/dev/sda', container_path: '/dev/sda', permissions: 'rwm' }],
    CDI_devices: [{ name: 'vendor.com/gpu=all' }],
    annotations: { 'run.oci.keep_original_groups': '1' },
    linux: {
      resources: { memory_limit_in_bytes: 64 << 20 },
      security_context: {
        privileged: true,
        capabilities: { add_capabilities: ['ALL'], drop_capabilities: [], add_ambient_capabilities: [] },
        namespace_options: { network: 'NODE', pid: 'NODE', ipc: 'NODE', target_id: '', userns_options: null },
        seccomp: { profile_type: 'Unconfined', localhost_ref: '' },
        run_as_user: { value: 0 },
      },
    },
  });
  const plain = containerConfig('restored', [], { image: { image: '/ckpt.tar', annotations: {}, user_specified_image: '', runtime_handler: '' } });
  const merged = restoredConfig(hostile, plain, 'busybox');
  assert.deepEqual(merged.devices, []);
  assert.deepEqual(merged.CDI_devices, []);
  assert.equal(merged.annotations?.['run.oci.keep_original_groups'], undefined);
  assert.equal(merged.linux?.security_context ?? null, plain.linux?.security_context ?? null, 'no security context of the archive');
  assert.deepEqual(merged.command, ['sh'], "the process settings are the archive's");
  assert.equal(merged.linux?.resources?.memory_limit_in_bytes, 64 << 20, "resources fall back to the archive's");

  const sc = {
    privileged: false,
    capabilities: { add_capabilities: [], drop_capabilities: ['NET_RAW'], add_ambient_capabilities: [] },
    seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' },
  };
  const asked = containerConfig('restored', [], {
    devices: [{ host_path: '/dev/null', container_path: '/dev/mynull', permissions: 'r' }],
    linux: { resources: { memory_limit_in_bytes: 32 << 20 }, security_context: sc },
  });
  const merged2 = restoredConfig(hostile, asked, 'busybox');
  assert.deepEqual(merged2.devices, asked.devices);
  assert.deepEqual(merged2.linux?.security_context, sc);
  assert.equal(merged2.linux?.resources?.memory_limit_in_bytes, 32 << 20);
});

test('a config.dump with wrongly typed fields is refused with the field named', () => {
  const base = { rootfsImageName: 'busybox', containerConfig: { metadata: { name: 'c' } } };
  assert.doesNotThrow(() => validConfigDump(base));
  for (const [containerConfig, field] of [
    [{ command: 'sh -c x' }, /command/],
    [{ args: [1] }, /args/],
    [{ envs: { A: '1' } }, /envs/],
    [{ mounts: [{ host_path: '/' }] }, /mounts/],
    [{ tty: 'yes' }, /tty/],
    [{ linux: { resources: { memory_limit_in_bytes: 'lots' } } }, /memory_limit_in_bytes/],
    [{ linux: { resources: { unified: { 'memory.max': 1 } } } }, /unified/],
  ] as const) {
    assert.throws(
      () => validConfigDump({ ...base, containerConfig }),
      (e) => e instanceof RestoreError && field.test(e.message),
      JSON.stringify(containerConfig),
    );
  }
  assert.throws(() => validConfigDump({ ...base, rootfsImageName: 42 }), RestoreError);
});

test('a restore keeps the archived process settings and takes metadata, labels, mounts and log path from the request', () => {
  const archived = containerConfig('counter', ['sh', '-c', 'count'], {
    envs: [{ key: 'A', value: '1' }],
    mounts: [
      {
        container_path: '/data',
        host_path: '/old/data',
        readonly: false,
        propagation: 'PROPAGATION_PRIVATE',
        selinux_relabel: false,
        uid_mappings: [],
        gid_mappings: [],
        recursive_read_only: false,
        image: null,
        image_sub_path: '',
      },
    ],
    annotations: { 'io.kubernetes.container.hash': 'old', keep: 'yes' },
    labels: { old: 'label' },
  });
  const request = containerConfig('restored', [], {
    image: { image: '/ckpt.tar', annotations: {}, user_specified_image: '', runtime_handler: '' },
    mounts: [{ ...archived.mounts[0], host_path: '/new/data', readonly: true }],
    annotations: { 'io.kubernetes.container.hash': 'new' },
    labels: { fresh: 'label' },
    log_path: 'restored.log',
  });
  const merged = restoredConfig(archived, request, 'registry/busybox:v1');
  assert.deepEqual(merged.command, ['sh', '-c', 'count']);
  assert.deepEqual(merged.envs, [{ key: 'A', value: '1' }]);
  assert.equal(merged.metadata?.name, 'restored');
  assert.equal(merged.image?.image, 'registry/busybox:v1');
  assert.deepEqual(merged.labels, { fresh: 'label' });
  assert.deepEqual(merged.annotations, { 'io.kubernetes.container.hash': 'new' }, "annotations are the request's");
  assert.equal(merged.log_path, 'restored.log');
  assert.equal(merged.mounts[0]!.host_path, '/new/data');
  assert.equal(merged.mounts[0]!.readonly, true);
  assert.throws(
    () => restoredConfig(archived, { ...request, mounts: [] }, 'x'),
    (e) => e instanceof RestoreError && /\/data/.test(e.message),
  );
});

test("an archive whose config.dump asks for a host device, ALL capabilities and host namespaces restores with the request's settings", async (t) => {
  const { planRestore } = await import('../../../src/container/checkpoint.ts');
  const dir = await tempDir(t);
  const archive = join(dir, 'crafted.tar');
  const containerConfigDump = containerConfig('evil', ['/bin/sh', '-c', 'cat /dev/sda'], {
    devices: [{ host_path: '/dev/sda', container_path: '/dev/xvda', permissions: 'rwm' }],
    linux: {
      resources: null,
      security_context: {
        privileged: true,
        capabilities: { add_capabilities: ['ALL'], drop_capabilities: [], add_ambient_capabilities: ['SYS_ADMIN'] },
        namespace_options: { network: 'NODE', pid: 'NODE', ipc: 'NODE', target_id: '', userns_options: null },
        seccomp: { profile_type: 'Unconfined', localhost_ref: '' },
      },
    },
  });
  const dump = {
    id: 'x',
    name: 'evil',
    rootfsImage: 'busybox',
    rootfsImageRef: 'sha256:' + 'b'.repeat(64),
    rootfsImageName: 'busybox',
    containerConfig: containerConfigDump,
  };
  await tarFile(archive, [
    { name: 'checkpoint/', type: 'directory' },
    { name: 'config.dump', body: JSON.stringify(dump) },
    { name: 'spec.dump', body: JSON.stringify({ process: { capabilities: { bounding: ['CAP_SYS_ADMIN'] } }, linux: { devices: [{ path: '/dev/sda' }] } }) },
  ]);
  const sc = {
    privileged: false,
    run_as_user: { value: 1000 },
    capabilities: { add_capabilities: [], drop_capabilities: ['ALL'], add_ambient_capabilities: [] },
    seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' },
    namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', target_id: '', userns_options: null },
  };
  const request = containerConfig('restored', [], {
    image: { image: archive, annotations: {}, user_specified_image: '', runtime_handler: '' },
    linux: { resources: null, security_context: sc },
  });
  const resolve = async (ref: string) =>
    ref === 'busybox' ? { id: 'sha256:' + 'b'.repeat(64), repo_tags: ['busybox:latest'], repo_digests: [], config: {}, chainIds: [] } : undefined;
  const plan = await planRestore(archive, request, resolve);
  assert.deepEqual(plan.config.devices, []);
  assert.deepEqual(plan.config.linux?.security_context, sc);
  assert.deepEqual(plan.config.command, ['/bin/sh', '-c', 'cat /dev/sda']);

  // A request without a security context gets none from the archive either.
  const bare = await planRestore(archive, containerConfig('restored', []), resolve);
  assert.equal(bare.config.linux?.security_context ?? null, null);
  assert.deepEqual(bare.config.devices, []);
});
