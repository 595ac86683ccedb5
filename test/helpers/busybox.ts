// Builds a minimal root filesystem from Debian's busybox-static: the binary,
// a symlink per applet, /etc/passwd and /etc/group with a non-root user.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

export function busyboxApplets(): string[] {
  const out = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' });
  return out.split('\n').filter((name) => /^[a-z0-9_.[-]+$/.test(name) && name !== 'busybox');
}

export async function makeBusyboxRootfs(dir: string): Promise<void> {
  for (const sub of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'home/user', 'var/www']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  for (const applet of busyboxApplets()) {
    await symlink('busybox', join(dir, 'bin', applet)).catch(() => undefined);
  }
  await writeFile(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n');
}
