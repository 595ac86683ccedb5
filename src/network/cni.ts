// Running CNI plugins for a pod: loading the network list, building each
// plugin's config (runtimeConfig only for declared capabilities), ADD with a
// result kept for DEL, DEL in reverse order, and the pod IPs from a result.
import { run } from '../sys/spawn.ts';
import { access, constants, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { findCniConfigFile } from './cni-config.ts';
import { quote } from '../errors.ts';
import { metrics } from '../metrics.ts';

export interface CniPlugin {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface CniNetworkList {
  cniVersion: string;
  name: string;
  plugins: CniPlugin[];
  [key: string]: unknown;
}

export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

/** Values for plugins' runtimeConfig, passed only to plugins declaring the capability. */
export interface CniCapabilityArgs {
  portMappings?: CniPortMapping[];
  dns?: { servers: string[]; searches: string[]; options: string[] };
  ipRanges?: Array<Array<{ subnet: string }>>;
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
}

export interface CniPodArgs {
  namespace: string;
  name: string;
  uid: string;
  sandboxId: string;
}

/** What a sandbox keeps so DEL runs with the same config after a restart or a config change. */
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface CniAttachment {
  confFile: string;
  list: CniNetworkList;
  containerId: string;
  ifName: string;
  args: string;
  capabilities: CniCapabilityArgs;
  result?: CniResult;
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number; version?: string }>;
  ip4?: { ip: string };
  ip6?: { ip: string };
  [key: string]: unknown;
}

export class CniError extends Error {
  readonly plugin: string;
  /** The plugin's binary is in none of the bin_dirs. */
  readonly missing: boolean;
  constructor(plugin: string, message: string, missing = false) {
    super(message);
    this.plugin = plugin;
    this.missing = missing;
  }
}

/** A DEL that failed: the plugins not installed, and the messages of those that failed. */
export class CniDelError extends Error {
  readonly missing: string[];
  readonly failed: string[];
  constructor(missing: string[], failed: string[], messages: string[]) {
    super(messages.join('; '));
    this.missing = missing;
    this.failed = failed;
  }

  /** Only missing plugins stood in the way: the DEL can wait until they are installed. */
  get onlyMissing(): boolean {
    return this.missing.length > 0 && this.failed.length === 0;
  }
}

/** CNI_ARGS as kubelet's runtimes send them. */
export function cniArgs(pod: CniPodArgs): string {
  for (const [key, value] of Object.entries(pod)) {
    if (/[;=\s]/.test(value)) throw new Error(`pod ${key} ${quote(value)} cannot be passed to CNI: it contains ';', '=' or whitespace`);
  }
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.sandboxId};K8S_POD_UID=${pod.uid}`;
}

/** The runtimeConfig for one plugin: only the capabilities it declares, with values present. */
export function runtimeConfigFor(plugin: CniPlugin, args: CniCapabilityArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [cap, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (!enabled) continue;
    const value = (args as Record<string, unknown>)[cap];
    if (value === undefined) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[cap] = value;
  }
  return out;
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  return a > major || (a === major && b >= minor);
}

/** The stdin config of one plugin in a list. */
export function pluginConfig(list: CniNetworkList, plugin: CniPlugin, args: CniCapabilityArgs, prevResult: CniResult | undefined): Record<string, unknown> {
  const config: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  const runtimeConfig = runtimeConfigFor(plugin, args);
  if (Object.keys(runtimeConfig).length) config.runtimeConfig = runtimeConfig;
  if (prevResult) config.prevResult = prevResult;
  return config;
}

/** Reads a .conflist, or a single-plugin .conf/.json wrapped into a list. */
export async function loadNetworkList(file: string): Promise<CniNetworkList> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`CNI config ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new Error(`CNI config ${file} is not a JSON object`);
  let parsed = doc;
  if (!file.endsWith('.conflist')) {
    if (!doc.type) throw new Error(`CNI config ${file} has no plugin type`);
    const { cniVersion, name, ...plugin } = doc;
    parsed = { cniVersion, name, plugins: [plugin] };
  }
  if (typeof parsed.name !== 'string' || !parsed.name) throw new Error(`CNI config ${file} has no network name`);
  if (!Array.isArray(parsed.plugins) || parsed.plugins.length === 0) throw new Error(`CNI config ${file} lists no plugins`);
  parsed.cniVersion ??= '0.4.0';
  if (typeof parsed.cniVersion !== 'string') throw new Error(`CNI config ${file} has a cniVersion that is not a string`);
  for (const p of parsed.plugins as unknown[]) {
    const type = isObject(p) ? p.type : undefined;
    if (typeof type !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(type) || type.includes('..')) {
      throw new Error(`CNI config ${file} names an invalid plugin type ${quote(type)}`);
    }
  }
  return parsed as unknown as CniNetworkList;
}

/** The pod IPs of a result: every address, IPv4 first (the primary), as kubelet expects. */
export function resultIps(result: CniResult | undefined): string[] {
  if (!result) return [];
  const addresses: string[] = [];
  if (Array.isArray(result.ips)) {
    const sandboxIfaces = new Set((result.interfaces ?? []).map((iface, i) => (iface.sandbox ? i : -1)).filter((i) => i >= 0));
    for (const ip of result.ips) {
      if (ip.interface !== undefined && sandboxIfaces.size && !sandboxIfaces.has(ip.interface)) continue;
      addresses.push(ip.address.split('/')[0]!);
    }
  } else {
    if (result.ip4?.ip) addresses.push(result.ip4.ip.split('/')[0]!);
    if (result.ip6?.ip) addresses.push(result.ip6.ip.split('/')[0]!);
  }
  const unique = [...new Set(addresses)];
  return [...unique.filter((a) => !a.includes(':')), ...unique.filter((a) => a.includes(':'))];
}

export interface CniOptions {
  confDir: string;
  binDirs: string[];
  /** Milliseconds a plugin may run. */
  timeoutMs?: number;
  /** A chained loopback plugin is done in-process (see passesThrough). */
  builtinLoopback?: boolean;
}

export class CniRunner {
  readonly options: CniOptions;

  constructor(options: CniOptions) {
    this.options = options;
  }

  /** The attachment a pod would get now: the first config file of the dir. */
  async prepare(pod: CniPodArgs, capabilities: CniCapabilityArgs): Promise<CniAttachment> {
    const confFile = await findCniConfigFile(this.options.confDir);
    if (!confFile) {
      throw new Error(
        `no CNI network configuration in ${this.options.confDir}: install one (e.g. runtime/cni/10-tscri-bridge.conflist) or use host networking`,
      );
    }
    const list = await loadNetworkList(confFile);
    return { confFile, list, containerId: pod.sandboxId, ifName: 'eth0', args: cniArgs(pod), capabilities };
  }

  /** ADD through every plugin in order; the last result is the network's. */
  async add(attachment: CniAttachment, netns: string): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of attachment.list.plugins) {
      // Only once a result was handed on: a loopback with none would answer with lo's own.
      if (prev && this.passesThrough(attachment.list, plugin)) continue;
      const config = pluginConfig(attachment.list, plugin, attachment.capabilities, versionAtLeast(attachment.list.cniVersion, 0, 3) ? prev : undefined);
      const out = await this.exec('ADD', plugin.type, config, attachment, netns);
      if (out) prev = out as CniResult;
    }
    return prev ?? {};
  }

  /** DEL through every plugin in reverse order; every plugin runs even if one fails. */
  async del(attachment: CniAttachment, netns: string): Promise<void> {
    const errors: string[] = [];
    const missing: string[] = [];
    const failed: string[] = [];
    const withPrev = versionAtLeast(attachment.list.cniVersion, 0, 4);
    for (const plugin of [...attachment.list.plugins].reverse()) {
      if (this.passesThrough(attachment.list, plugin)) continue;
      const config = pluginConfig(attachment.list, plugin, attachment.capabilities, withPrev ? attachment.result : undefined);
      try {
        await this.exec('DEL', plugin.type, config, attachment, netns);
      } catch (err) {
        errors.push((err as Error).message);
        (err instanceof CniError && err.missing ? missing : failed).push(plugin.type);
      }
    }
    if (errors.length) throw new CniDelError(missing, failed, errors);
  }

  /**
   * Whether a plugin after the first is the standard loopback plugin done
   * in-process. Chained, that plugin brings lo up (done when the pod's
   * namespace was made) and returns the result it was given; its DEL brings lo
   * down in a namespace about to be deleted. Skipping it changes neither.
   */
  private passesThrough(list: CniNetworkList, plugin: CniPlugin): boolean {
    return this.options.builtinLoopback === true && plugin.type === 'loopback' && plugin !== list.plugins[0];
  }

  /** The plugin types of a network list that are in none of the bin_dirs. */
  async missingPlugins(list: CniNetworkList): Promise<string[]> {
    const missing: string[] = [];
    for (const plugin of list.plugins) {
      if (this.passesThrough(list, plugin)) continue;
      try {
        await this.findPlugin(plugin.type);
      } catch {
        missing.push(plugin.type);
      }
    }
    return [...new Set(missing)];
  }

  async findPlugin(type: string): Promise<string> {
    for (const dir of this.options.binDirs) {
      const file = join(dir, type);
      if (
        await access(file, constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return file;
    }
    throw new CniError(type, `CNI plugin ${type} not found in ${this.options.binDirs.join(', ')}`, true);
  }

  private exec(command: 'ADD' | 'DEL', type: string, config: Record<string, unknown>, a: CniAttachment, netns: string): Promise<unknown> {
    return metrics.time(metrics.cniDuration, { command, plugin: type }, () => this.execPlugin(command, type, config, a, netns));
  }

  private async execPlugin(command: 'ADD' | 'DEL', type: string, config: Record<string, unknown>, a: CniAttachment, netns: string): Promise<unknown> {
    const binary = await this.findPlugin(type);
    const env = {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: netns,
      CNI_IFNAME: a.ifName,
      CNI_ARGS: a.args,
      CNI_PATH: this.options.binDirs.join(':'),
    };
    const { code, stdout, stderr } = await run(binary, [], {
      env,
      input: JSON.stringify(config),
      timeoutMs: this.options.timeoutMs ?? 120_000,
      maxBuffer: 16 * 1024 * 1024,
    }).then(
      (r) => ({ code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr || (r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : '') }),
      (err: Error) => ({ code: 1, stdout: '', stderr: err.message }),
    );
    let parsed: unknown;
    try {
      parsed = stdout.trim() ? JSON.parse(stdout) : undefined;
    } catch {
      parsed = undefined;
    }
    if (code !== 0) {
      // A CNI error: { code, msg, details }.
      const failure = isObject(parsed) ? parsed : {};
      const detail = failure.msg
        ? `${String(failure.msg)}${failure.details ? `: ${String(failure.details)}` : ''}`
        : (stderr || stdout).trim() || `exit code ${code}`;
      throw new CniError(type, `CNI plugin ${type} (${basename(binary)}) failed ${command} on network ${a.list.name}: ${detail}`);
    }
    return parsed;
  }
}

/** Parses a Kubernetes bandwidth quantity ("10M", "1Gi", "500k") into bits per second. */
export function parseBandwidth(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)([kMGTPE]i?|m)?$/.exec(quantity.trim());
  if (!m) throw new Error(`invalid bandwidth quantity ${quote(quantity)}`);
  const units: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    Ei: 2 ** 60,
  };
  return Math.round(Number(m[1]) * (units[m[2] ?? ''] ?? 1));
}
