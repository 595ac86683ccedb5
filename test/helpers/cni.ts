// A private CNI network per test: a conflist with its own bridge name, subnet,
// network name and IPAM directory (so parallel runs never collide), an
// optional plugin that always fails, and checks for anything a pod left.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CNI_PLUGIN_DIR = '/usr/lib/cni';

export interface TestNetwork {
  dir: string;
  confDir: string;
  binDir: string;
  name: string;
  bridge: string;
  /** e.g. 10.213.7.0/24 */
  subnet: string;
  /** The bridge's address, e.g. 10.213.7.1 */
  gateway: string;
  ipamDir: string;
  /** A [cni] TOML table for the daemon's config. */
  toml: string;
  /**
   * What is left of the given sandboxes: IPAM reservations and iptables rules
   * naming them, and (unless other pods are still running) any veth on the bridge.
   */
  leftovers(sandboxIds: string[], options?: { othersRunning?: boolean }): Promise<string[]>;
  cleanup(): Promise<void>;
}

export interface TestNetworkOptions {
  /** Add a plugin after bridge and portmap whose ADD fails with a CNI error. */
  failingPlugin?: boolean;
  /** Leave the conf dir empty (no network configured). */
  empty?: boolean;
}

function usedSubnets(): string {
  return execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' }) + execFileSync('ip', ['-4', 'addr', 'show'], { encoding: 'utf8' });
}

function pickSubnet(): string {
  const used = usedSubnets();
  for (let i = 0; i < 100; i++) {
    const b = 200 + Math.floor(Math.random() * 50);
    const c = Math.floor(Math.random() * 256);
    if (!used.includes(`10.${b}.${c}.`)) return `10.${b}.${c}.0/24`;
  }
  throw new Error('no free test subnet');
}

export async function makeTestNetwork(options: TestNetworkOptions = {}): Promise<TestNetwork> {
  const tag = randomBytes(3).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'tscri-cni-'));
  const confDir = join(dir, 'net.d');
  const binDir = join(dir, 'bin');
  const ipamDir = join(dir, 'ipam');
  await mkdir(confDir);
  await mkdir(binDir);
  const name = `tscri-test-${tag}`;
  const bridge = `tscri${tag}`;
  const subnet = pickSubnet();
  const gateway = subnet.replace(/0\/24$/, '1');
  const plugins: object[] = [
    {
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', dataDir: ipamDir, routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet }]] },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ];
  if (options.failingPlugin) {
    const script = `#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then\n  echo '{"cniVersion":"1.0.0","code":11,"msg":"test plugin refuses the pod","details":"always fails"}'\n  exit 1\nfi\nif [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; fi\nexit 0\n`;
    await writeFile(join(binDir, `fail-${tag}`), script);
    await chmod(join(binDir, `fail-${tag}`), 0o755);
    plugins.push({ type: `fail-${tag}` });
  }
  plugins.push({ type: 'loopback' });
  if (!options.empty) {
    await writeFile(join(confDir, '10-test.conflist'), JSON.stringify({ cniVersion: '1.0.0', name, plugins }, null, 2));
  }
  const toml = `[cni]\nconf_dir = "${confDir}"\nbin_dirs = ["${binDir}", "${CNI_PLUGIN_DIR}"]\n`;

  return {
    dir,
    confDir,
    binDir,
    name,
    bridge,
    subnet,
    gateway,
    ipamDir,
    toml,
    async leftovers(ids, options = {}) {
      const found: string[] = [];
      if (!options.othersRunning && existsSync(`/sys/class/net/${bridge}`)) {
        const ports = execFileSync('ip', ['-o', 'link', 'show', 'master', bridge], { encoding: 'utf8' }).trim();
        if (ports) found.push(`veth on ${bridge}: ${ports}`);
      }
      const reservations = await readdir(join(ipamDir, name)).catch(() => [] as string[]);
      for (const file of reservations) {
        if (file.startsWith('last_reserved_ip') || file === 'lock') continue;
        const owner = await readFile(join(ipamDir, name, file), 'utf8').catch(() => '');
        if (!options.othersRunning || ids.some((id) => owner.includes(id))) found.push(`IPAM reservation ${file} held by ${owner.split(/\s/)[0]}`);
      }
      const rules = execFileSync('iptables-save', { encoding: 'utf8' });
      // With no ids given, any rule of this network is a leftover.
      const owners = ids.length ? ids : [name];
      for (const id of owners) {
        for (const line of rules.split('\n')) if (line.includes(id)) found.push(`iptables: ${line}`);
      }
      return found;
    },
    async cleanup() {
      if (existsSync(`/sys/class/net/${bridge}`)) execFileSync('ip', ['link', 'del', bridge]);
      await rm(dir, { recursive: true, force: true });
      // Rules that outlive the network mean a pod of it never got its CNI DEL: removed, then reported.
      const left = removeNatRules(name);
      if (left.length) throw new Error(`pods of the test network ${name} were never torn down; their iptables rules were removed:\n${left.join('\n')}`);
    },
  };
}

/**
 * Deletes the nat rules the bridge and portmap plugins made for pods of the
 * network `name` (their comments name it) and the per-pod chains they jump
 * to; returns the rules deleted. The plugins' shared CNI-HOSTPORT-* chains stay.
 */
function removeNatRules(name: string): string[] {
  const rules = execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).split('\n');
  const mine = rules.filter((l) => l.startsWith('-A ') && l.includes(`name: \\"${name}\\"`));
  const chains = new Set(mine.map((l) => /-j (CNI-[\w-]+)/.exec(l)?.[1]).filter((c): c is string => !!c && !c.startsWith('CNI-HOSTPORT-')));
  for (const line of mine) execFileSync('sh', ['-c', `iptables -t nat ${line.replace(/^-A /, '-D ')}`]);
  for (const chain of chains) {
    execFileSync('iptables', ['-t', 'nat', '-F', chain]);
    execFileSync('iptables', ['-t', 'nat', '-X', chain]);
  }
  return mine;
}
