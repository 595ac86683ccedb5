// Hand-made OCI bundles for driver tests: a busybox rootfs and the runtime's
// own default config.json (`runc spec`) with the test's process and a
// cgroup path of its own.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeBusyboxRootfs } from '../../helpers/busybox.ts';

export const RUNC = '/usr/sbin/runc';
export const CONMON = '/usr/bin/conmon';

export interface Fixture {
  dir: string;
  rootfs: string;
  runtimeRoot: string;
  exitDir: string;
  socketDir: string;
  logDir: string;
  cleanup(): Promise<void>;
}

let shared: { rootfs: string; dir: string } | undefined;

/** A temp directory with a busybox rootfs shared by the bundles of one test file. */
export async function makeFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-ct-'));
  const rootfs = join(dir, 'rootfs');
  await makeBusyboxRootfs(rootfs);
  shared = { rootfs, dir };
  return {
    dir,
    rootfs,
    runtimeRoot: join(dir, 'runc'),
    exitDir: join(dir, 'exits'),
    socketDir: join(dir, 's'),
    logDir: join(dir, 'logs'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export function newId(): string {
  return randomBytes(32).toString('hex');
}

/** Writes <dir>/<id>/config.json for a container running args in the fixture's rootfs. */
export async function makeBundle(f: Fixture, id: string, args: string[], edit?: (spec: any) => void): Promise<string> {
  const bundle = join(f.dir, 'bundles', id);
  execFileSync('mkdir', ['-p', bundle]);
  execFileSync(RUNC, ['spec', '--bundle', bundle]);
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
  spec.root = { path: f.rootfs, readonly: true };
  spec.process.terminal = false;
  spec.process.args = args;
  spec.linux.cgroupsPath = `/tscri-test-${id.slice(0, 16)}`;
  edit?.(spec);
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

export { shared };
