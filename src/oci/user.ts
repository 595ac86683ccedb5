// Resolving the container's user: run_as_user/run_as_group/run_as_username
// or the image's User ("name", "uid", "uid:gid", "name:group"), through the
// container's own /etc/passwd and /etc/group; supplemental groups from the
// image's /etc/group unless the Strict policy says not to. The primary group
// is always the first supplementary group.
import { SpecError } from './errors.ts';
import { quote } from '../errors.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  username: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export function parsePasswd(text = ''): PasswdEntry[] {
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }];
  });
}

export function parseGroup(text = ''): GroupEntry[] {
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 3 || !/^\d+$/.test(f[2]!)) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }];
  });
}

export interface UserRequest {
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername?: string;
  imageUser?: string;
  supplementalGroups?: number[];
  /** Strict: only the primary group and the requested supplemental groups. */
  strict?: boolean;
}

function groupId(spec: string, groups: GroupEntry[]): number {
  if (/^\d+$/.test(spec)) return Number(spec);
  const group = groups.find((g) => g.name === spec);
  if (!group) throw new SpecError(`group ${quote(spec)} is not in the container's /etc/group`);
  return group.gid;
}

export function resolveUser(req: UserRequest, etc: { passwd?: string; group?: string }): ResolvedUser {
  const passwd = parsePasswd(etc.passwd);
  const groups = parseGroup(etc.group);
  let uid = 0;
  let gid: number | undefined;
  let name = '';
  if (req.runAsUsername) {
    const entry = passwd.find((p) => p.name === req.runAsUsername);
    if (!entry) throw new SpecError(`user ${quote(req.runAsUsername)} is not in the container's /etc/passwd`);
    ({ uid, name } = entry);
    gid = entry.gid;
  } else if (req.runAsUser !== undefined) {
    uid = req.runAsUser;
    const entry = passwd.find((p) => p.uid === uid);
    name = entry?.name ?? '';
    gid = entry?.gid;
  } else if (req.imageUser) {
    const [userPart = '', groupPart] = req.imageUser.split(':');
    if (/^\d+$/.test(userPart)) {
      uid = Number(userPart);
      const entry = passwd.find((p) => p.uid === uid);
      name = entry?.name ?? '';
      gid = entry?.gid;
    } else if (userPart) {
      const entry = passwd.find((p) => p.name === userPart);
      if (!entry) throw new SpecError(`the image's user ${quote(userPart)} is not in the container's /etc/passwd`);
      ({ uid, name } = entry);
      gid = entry.gid;
    }
    if (groupPart) gid = groupId(groupPart, groups);
  } else {
    name = passwd.find((p) => p.uid === 0)?.name ?? 'root';
  }
  if (req.runAsGroup !== undefined) gid = req.runAsGroup;
  const primary = gid ?? 0;
  const extra = new Set<number>();
  if (!req.strict && name) for (const g of groups) if (g.members.includes(name) && g.gid !== primary) extra.add(g.gid);
  for (const g of req.supplementalGroups ?? []) if (g !== primary) extra.add(g);
  // The primary group leads the supplementary groups, as containerd and CRI-O set them:
  // the kernel's group list is all a process checks file access against after setgroups.
  return { uid, gid: primary, additionalGids: [primary, ...[...extra].sort((a, b) => a - b)], username: name };
}
