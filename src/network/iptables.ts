// Fallback cleanup of iptables rules that CNI plugins tag with a pod's id
// (comments such as: name: "net" id: "<sandbox id>"). Plugins remove them on
// DEL, except when the pod's network namespace is already gone (the bridge
// plugin then cannot learn the pod's addresses); this finds and removes them.
import { run } from '../sys/spawn.ts';

async function exec(file: string, args: string[]): Promise<string> {
  let r;
  try {
    r = await run(file, args, { timeoutMs: 60_000, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`${file} ${args.join(' ')}: ${(err as Error).message}`);
  }
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.signal ?? `code ${r.code}`}`}`);
  return r.stdout;
}

/** Splits one iptables-save rule line into arguments (double quotes with backslash escapes). */
export function splitRule(line: string): string[] {
  const args: string[] = [];
  let current = '';
  let inQuotes = false;
  let hasToken = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (inQuotes) {
      if (ch === '\\' && i + 1 < line.length) current += line[++i];
      else if (ch === '"') inQuotes = false;
      else current += ch;
    } else if (ch === '"') {
      inQuotes = true;
      hasToken = true;
    } else if (ch === ' ') {
      if (hasToken) args.push(current);
      current = '';
      hasToken = false;
    } else {
      current += ch;
      hasToken = true;
    }
  }
  if (hasToken) args.push(current);
  return args;
}

/** The rules of an iptables-save dump whose comment names the id, and the chains they jump to. */
export function taggedRules(dump: string, id: string): { rules: string[][]; chains: string[] } {
  const rules: string[][] = [];
  const chains = new Set<string>();
  for (const line of dump.split('\n')) {
    if (!line.startsWith('-A ') || !line.includes(`id: \\"${id}\\"`)) continue;
    const args = splitRule(line);
    rules.push(args.slice(1));
    const jump = args.indexOf('-j');
    const target = jump >= 0 ? args[jump + 1] : undefined;
    if (target?.startsWith('CNI-')) chains.add(target);
  }
  return { rules, chains: [...chains] };
}

/** Removes every rule tagged with the pod's id, and the per-pod chains those rules jumped to. */
export async function removeTaggedRules(id: string): Promise<number> {
  let removed = 0;
  for (const tool of ['iptables', 'ip6tables']) {
    for (const table of ['nat', 'filter']) {
      const dump = await exec(`${tool}-save`, ['-t', table]).catch(() => '');
      const { rules, chains } = taggedRules(dump, id);
      for (const rule of rules) {
        await exec(tool, ['-w', '-t', table, '-D', ...rule]).then(
          () => removed++,
          () => undefined,
        );
      }
      if (!chains.length) continue;
      const after = await exec(`${tool}-save`, ['-t', table]).catch(() => '');
      for (const chain of chains) {
        // Only per-pod chains that nothing jumps to any more are removed; shared ones stay.
        if (chain.startsWith('CNI-HOSTPORT-') || new RegExp(`-j ${chain}( |$)`, 'm').test(after)) continue;
        await exec(tool, ['-w', '-t', table, '-F', chain]).catch(() => undefined);
        await exec(tool, ['-w', '-t', table, '-X', chain]).catch(() => undefined);
      }
    }
  }
  return removed;
}
