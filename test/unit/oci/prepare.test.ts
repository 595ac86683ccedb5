// What makeSpec checks on the node before building a spec: image_sub_path
// inside an image volume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkImageSubPath } from '../../../src/oci/prepare.ts';

test('checkImageSubPath: a plain directory passes; missing, files, symlinks, .. and NUL are refused', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tscri-subpath-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'etc/ssl'), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n');
  await symlink('/', join(root, 'evil'));
  await symlink('etc', join(root, 'inner'));
  await checkImageSubPath(root, 'etc', '/v');
  await checkImageSubPath(root, '/etc/ssl/', '/v');
  const refused = async (sub: string, why: RegExp) => assert.rejects(checkImageSubPath(root, sub, '/v'), why);
  await refused('nothere', /does not exist/);
  await refused('etc/passwd', /not a directory/);
  await refused('evil', /symlink/);
  await refused('evil/etc', /symlink/);
  await refused('inner', /symlink/);
  await refused('../etc', /escapes/);
  await refused('etc/../../x', /escapes/);
  await refused('etc\0x', /NUL/);
});
