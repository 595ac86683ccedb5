import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  archiveName,
  checkOutputDir,
  containerConfigMismatch,
  matchContainerConfigs,
  parseManifest,
  PodCheckpointError,
  podConfigMismatch,
  POD_MANIFEST,
  readPodCheckpoint,
  unsupportedOptions,
} from '../../../src/checkpoint/pod.ts';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const podConfig: any = {
  metadata: { name: 'p', namespace: 'n', uid: 'u1', attempt: 0 },
  hostname: 'web',
  linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER' } }, sysctls: {} },
  port_mappings: [],
};
const manifest = (over: Record<string, unknown> = {}) => ({
  version: 1,
  sandboxId: 'p'.repeat(64),
  runtimeHandler: 'runc',
  checkpointedTime: '2026-01-01T00:00:00.000Z',
  podConfig,
  containers: [
    { name: 'web', id: ID_A, archive: archiveName(ID_A) },
    { name: 'side', id: ID_B, archive: archiveName(ID_B) },
  ],
  ...over,
});

test('a manifest tscri wrote parses back', () => {
  const m = parseManifest(JSON.stringify(manifest()));
  assert.deepEqual(
    m.containers.map((c) => c.name),
    ['web', 'side'],
  );
  assert.equal(m.podConfig.hostname, 'web');
});

test('hostile manifests are refused with the reason', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['{', /not JSON/],
    ['[]', /not an object/],
    ['null', /not an object/],
    [JSON.stringify(manifest({ version: 2 })), /version 2/],
    [JSON.stringify(manifest({ sandboxId: 7 })), /sandboxId is not a string/],
    [JSON.stringify(manifest({ podConfig: [] })), /podConfig is not an object/],
    [JSON.stringify(manifest({ containers: [] })), /lists no containers/],
    [JSON.stringify(manifest({ containers: 'x' })), /lists no containers/],
    [JSON.stringify(manifest({ containers: [null] })), /containers\[0\] is not an object/],
    [JSON.stringify(manifest({ containers: [{ name: '', id: ID_A, archive: archiveName(ID_A) }] })), /has no name/],
    [JSON.stringify(manifest({ containers: [{ name: 'x', id: '../../etc', archive: 'container-../../etc.tar' }] })), /no valid id/],
    [JSON.stringify(manifest({ containers: [{ name: 'x', id: ID_A, archive: '../../../etc/shadow' }] })), /expected container-a+\.tar/],
    [
      JSON.stringify(
        manifest({
          containers: [
            { name: 'x', id: ID_A, archive: archiveName(ID_A) },
            { name: 'x', id: ID_B, archive: archiveName(ID_B) },
          ],
        }),
      ),
      /name "x" twice/,
    ],
    [
      JSON.stringify(
        manifest({
          containers: [
            { name: 'x', id: ID_A, archive: archiveName(ID_A) },
            { name: 'y', id: ID_A, archive: archiveName(ID_A) },
          ],
        }),
      ),
      /id a+ twice/,
    ],
    [JSON.stringify(manifest({ containers: Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}` })) })), /more than 1024/],
  ];
  for (const [text, pattern] of bad)
    assert.throws(
      () => parseManifest(text as string),
      (e: unknown) => e instanceof PodCheckpointError && pattern.test((e as Error).message),
      String(text).slice(0, 80),
    );
});

test('a checkpoint directory is read only when every file is a regular file of its own, and a huge manifest is refused unread', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-podckpt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await assert.rejects(readPodCheckpoint(''), /checkpoint_path is required/);
  await assert.rejects(readPodCheckpoint('relative/dir'), /must be an absolute path/);
  await assert.rejects(readPodCheckpoint(join(dir, 'nope')), /is not a directory/);
  await assert.rejects(readPodCheckpoint(dir), /manifest .* is missing/);
  await writeFile(join(dir, POD_MANIFEST), JSON.stringify(manifest()));
  await assert.rejects(readPodCheckpoint(dir), /archive of container "web" .* is missing/);
  await writeFile(join(dir, archiveName(ID_A)), 'x');
  await symlink('/etc/passwd', join(dir, archiveName(ID_B)));
  await assert.rejects(readPodCheckpoint(dir), /archive of container "side" .* is not a regular file/);
  await rm(join(dir, archiveName(ID_B)));
  await writeFile(join(dir, archiveName(ID_B)), 'x');
  const { archives } = await readPodCheckpoint(dir);
  assert.equal(archives.get('side'), join(dir, archiveName(ID_B)));
  await writeFile(join(dir, POD_MANIFEST), Buffer.alloc(5 * 1024 * 1024, 0x20));
  await assert.rejects(readPodCheckpoint(dir), /more than the 4194304 a manifest may have/);
  const link = join(dir, 'link');
  await symlink(dir, link);
  await assert.rejects(readPodCheckpoint(link), /is not a directory/);
});

test('the output directory must exist and be a directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-podckpt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await checkOutputDir(dir);
  await assert.rejects(checkOutputDir(''), /output_path is required/);
  await assert.rejects(checkOutputDir('out'), /absolute/);
  await assert.rejects(checkOutputDir('/tmp/\0x'), /absolute/);
  await assert.rejects(checkOutputDir(join(dir, 'missing')), /does not exist/);
  await writeFile(join(dir, 'file'), '');
  await assert.rejects(checkOutputDir(join(dir, 'file')), /not a directory/);
  await mkdir(join(dir, 'real'));
  await symlink(join(dir, 'real'), join(dir, 'link'));
  await assert.rejects(checkOutputDir(join(dir, 'link')), /not a directory/);
});

test('options: none are defined, so any is refused by name', () => {
  assert.equal(unsupportedOptions('CheckpointPod', {}), undefined);
  assert.equal(unsupportedOptions('CheckpointPod', undefined), undefined);
  assert.match(unsupportedOptions('RestorePod', { b: '1', a: '2' })!, /RestorePod options "a", "b" are not supported/);
});

test('restore-time pod configs may change names and uid, not what the processes depend on', () => {
  const moved = { ...podConfig, metadata: { ...podConfig.metadata, uid: 'u2' }, labels: { x: 'y' }, log_directory: '/var/log/pods/new' };
  assert.equal(podConfigMismatch(podConfig, moved), undefined);
  assert.match(podConfigMismatch(podConfig, { ...podConfig, hostname: 'other' })!, /hostname/);
  assert.match(
    podConfigMismatch(podConfig, {
      ...podConfig,
      linux: { ...podConfig.linux, security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER' } } },
    })!,
    /security_context/,
  );
  assert.match(podConfigMismatch(podConfig, { ...podConfig, linux: { ...podConfig.linux, sysctls: { 'net.ipv4.ip_forward': '1' } } })!, /sysctls/);
  assert.match(podConfigMismatch(podConfig, { ...podConfig, port_mappings: [{ container_port: 80 }] })!, /port_mappings/);
  // Key order does not matter.
  const reordered = JSON.parse(
    JSON.stringify({
      port_mappings: [],
      linux: { sysctls: {}, security_context: { namespace_options: { pid: 'CONTAINER', network: 'POD' } } },
      hostname: 'web',
    }),
  );
  assert.equal(podConfigMismatch(podConfig, reordered), undefined);
});

test('a container config must describe the checkpointed process where it says anything', () => {
  const archived: any = { command: ['sh', '-c', 'run'], args: [], working_dir: '/w', envs: [{ key: 'A', value: { type: 'Buffer', data: [49] } }] };
  assert.equal(containerConfigMismatch(archived, { metadata: { name: 'c' } } as any), undefined);
  assert.equal(
    containerConfigMismatch(archived, { command: ['sh', '-c', 'run'], working_dir: '/w', envs: [{ key: 'A', value: Buffer.from('1') }] } as any),
    undefined,
  );
  assert.match(containerConfigMismatch(archived, { command: ['sh'] } as any)!, /command/);
  assert.match(containerConfigMismatch(archived, { args: ['x'] } as any)!, /args/);
  assert.match(containerConfigMismatch(archived, { working_dir: '/' } as any)!, /working_dir/);
  assert.match(containerConfigMismatch(archived, { envs: [{ key: 'A', value: Buffer.from('2') }] } as any)!, /environment/);
});

test('restore configs are matched by name: exactly the checkpointed set', () => {
  const m = parseManifest(JSON.stringify(manifest()));
  const cfg = (name: string) => ({ metadata: { name } }) as any;
  assert.deepEqual([...matchContainerConfigs(m, [cfg('side'), cfg('web')]).keys()], ['side', 'web']);
  assert.throws(() => matchContainerConfigs(m, []), /container_configs is empty/);
  assert.throws(() => matchContainerConfigs(m, [cfg('web')]), /missing: side/);
  assert.throws(() => matchContainerConfigs(m, [cfg('web'), cfg('side'), cfg('extra')]), /not in the checkpoint: extra/);
  assert.throws(() => matchContainerConfigs(m, [cfg('web'), cfg('web')]), /twice/);
  assert.throws(() => matchContainerConfigs(m, [{ metadata: null } as any]), /has no metadata.name/);
});
