// Removal answers before the disk is cleaned: RemoveContainer answers once
// the record is gone and removes the runtime state, rootfs and bundle right
// after; RemoveImage renames what it deletes into a trash under --root and
// deletes it after the answer. Checked through the socket: the paths go soon
// after the call returns and the trash empties; the same name and image are
// created and pulled again right away; what a crash left in the trash is
// deleted at start, without following a symlink out of it.
import { test, before, after } from 'node:test';
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestDaemon } from '../helpers/daemon.ts';
import { startPodFixture, type PodFixture } from '../helpers/pod-fixture.ts';
import { waitGone, waitUntil } from '../helpers/wait.ts';

let f: PodFixture;
let d: TestDaemon;
let dir: string;
let outside: string;
let image: string;
let tag: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tscri-rmbg-'));
  outside = await mkdtemp(join(tmpdir(), 'tscri-rmbg-outside-'));
  await writeFile(join(outside, 'precious'), 'keep');
  // What a crash left in both trashes, and a link in one pointing outside.
  for (const trash of [join(dir, 'root', 'trash'), join(dir, 'state', 'trash')]) {
    await mkdir(join(trash, 'left', 'deep'), { recursive: true });
    await writeFile(join(trash, 'left', 'deep', 'file'), 'x');
  }
  await symlink(outside, join(dir, 'root', 'trash', 'link-out'));
  f = await startPodFixture({ name: 'rmbg', network: false, pull: false, dir, image: { config: { Cmd: ['sh'] } } });
  ({ d, image, tag } = f);
});

after(async () => {
  await f?.cleanup();
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** Waits (bounded) until the trash directory is empty. */
async function emptied(trash: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await readdir(trash)).length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(await readdir(trash), [], `${trash} is emptied`);
}

test('what a crash left in the trash is deleted at start, and a link out of it only as a link', async () => {
  await emptied(join(d.root, 'trash'));
  await emptied(join(d.state, 'trash'));
  assert.equal(await readFile(join(outside, 'precious'), 'utf8'), 'keep');
});

test('a removed container is gone when RemoveContainer returns, from disk soon after, and its name is free at once', async () => {
  await d.call('PullImage', { image: { image } });
  const config = {
    metadata: { name: 'rmbg', namespace: 'rmbg', uid: `rmbg-${tag}`, attempt: 0 },
    log_directory: join(dir, 'logs'),
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  f.pods.push(pod_sandbox_id);
  const create = async () =>
    (
      await d.call('CreateContainer', {
        pod_sandbox_id,
        config: { metadata: { name: 'same' }, image: { image }, command: ['sh', '-c', 'echo hi > /written; sleep 30'], log_path: 'same.log' },
        sandbox_config: config,
      })
    ).container_id as string;
  const first = await create();
  await d.call('StartContainer', { container_id: first });
  const bundle = join(d.state, 'containers', first);
  const upper = join(d.root, 'snapshots', 'containers', first);
  assert.ok(existsSync(bundle) && existsSync(upper));
  await d.call('StopContainer', { container_id: first, timeout: 0 });
  await d.call('RemoveContainer', { container_id: first });
  await assert.rejects(d.call('ContainerStatus', { container_id: first }), (err: { code?: number }) => err.code === status.NOT_FOUND);
  assert.ok(!(await d.call('ListContainers', {})).containers.some((c: { id: string }) => c.id === first));
  await waitGone(bundle, 'the bundle goes');
  await waitGone(upper, 'the upper dir goes');
  assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(bundle), 'the rootfs is unmounted');
  // The same name again, at once, runs.
  const second = await create();
  assert.notEqual(second, first);
  await d.call('StartContainer', { container_id: second });
  const { status: s } = await d.call('ContainerStatus', { container_id: second });
  assert.equal(s.state, 'CONTAINER_RUNNING');
  await emptied(join(d.root, 'trash'));
  await emptied(join(d.state, 'trash'));
  // Removing again is a no-op; the second container is removed the same way.
  await d.call('RemoveContainer', { container_id: first });
  await d.call('StopContainer', { container_id: second, timeout: 0 });
  await d.call('RemoveContainer', { container_id: second });
  await waitGone(join(d.state, 'containers', second), 'the second bundle goes');
  await d.call('StopPodSandbox', { pod_sandbox_id });
  await d.call('RemovePodSandbox', { pod_sandbox_id });
  await emptied(join(d.root, 'trash'));
  await emptied(join(d.state, 'trash'));
});

test('a removed image leaves its snapshots at once and can be pulled again right away', async () => {
  await d.call('PullImage', { image: { image } });
  const snapshots = async () => (await readdir(join(d.root, 'snapshots'))).filter((n) => /^[0-9]+$/.test(n));
  assert.ok((await snapshots()).length > 0);
  await d.call('RemoveImage', { image: { image } });
  assert.deepEqual(await snapshots(), [], 'no snapshot is left under its name on return');
  assert.equal((await d.call('ImageStatus', { image: { image } })).image, null);
  await d.call('PullImage', { image: { image } });
  assert.ok((await d.call('ImageStatus', { image: { image } })).image);
  assert.ok((await snapshots()).length > 0);
  await emptied(join(d.root, 'trash'));
  // Twice in a row, and on an image already gone.
  await d.call('RemoveImage', { image: { image } });
  await d.call('RemoveImage', { image: { image } });
  await emptied(join(d.root, 'trash'));
  const usage = await d.call('ImageFsInfo', {});
  assert.ok(usage.image_filesystems.length > 0);
  assert.equal(await readFile(join(outside, 'precious'), 'utf8'), 'keep');
});

test('an image removed while a container used it leaves no snapshots once that container is removed', async () => {
  await d.call('PullImage', { image: { image } });
  const snapshots = async () => (await readdir(join(d.root, 'snapshots'))).filter((n) => /^[0-9]+$/.test(n));
  const config = {
    metadata: { name: 'rmbg-lease', namespace: 'rmbg', uid: `rmbg-lease-${tag}`, attempt: 0 },
    log_directory: join(dir, 'logs'),
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id } = await d.call('RunPodSandbox', { config });
  f.pods.push(pod_sandbox_id);
  const { container_id } = await d.call('CreateContainer', {
    pod_sandbox_id,
    config: { metadata: { name: 'user' }, image: { image }, command: ['sleep', '30'], log_path: 'user.log' },
    sandbox_config: config,
  });
  await d.call('RemoveImage', { image: { image } });
  assert.ok((await snapshots()).length > 0, 'the container still holds its layers');
  await d.call('RemoveContainer', { container_id });
  await waitUntil(async () => (await snapshots()).length === 0, 'its layers go with it');
  await d.call('RemovePodSandbox', { pod_sandbox_id });
  await emptied(join(d.root, 'trash'));
});
