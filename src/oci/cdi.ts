// CDI (Container Device Interface) devices: a container names devices as
// "vendor.com/class=name" (CreateContainer's CDI_devices, or annotations
// "cdi.k8s.io/<key>: name,name" as device plugins set them); each is looked
// up in the CDI spec files of the configured directories and its container
// edits (device nodes, environment, mounts, hooks, additional groups), with
// those of its spec, are applied to the OCI spec.
//
// Spec files are JSON (".json"); YAML files are not read (no YAML parser is
// part of tscri) and are named in the error when a device is not found.
// Directories later in the list take precedence over earlier ones (as in the
// CDI registry: /var/run/cdi over /etc/cdi); a device defined twice within
// one directory is a conflict and cannot be used. Every file is read within
// limits and type-checked field by field: a broken file is skipped (and
// named when a device cannot be resolved), never half-applied.
import { open, readdir, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, normalize } from 'node:path';
import { failedPrecondition, invalidArgument } from '../errors.ts';
import type { Hook, HookKind, Spec } from './types.ts';
import type { HostDevice } from './spec.ts';
import { deviceAt } from './host.ts';

export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
/** The largest spec file read; vendor specs with hundreds of devices are well below it. */
export const MAX_SPEC_BYTES = 4 * 1024 * 1024;
/** At most this many spec files per directory are read, and this many bytes in all. */
export const MAX_SPEC_FILES = 256;
export const MAX_TOTAL_BYTES = 32 * 1024 * 1024;
/** More CDI devices than this in one container is not a request anyone makes. */
export const MAX_REQUESTED = 128;

const VENDOR = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,126}[A-Za-z0-9])?$/;
const CLASS = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?$/;
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.:-]{0,250}[A-Za-z0-9])?$/;
const HOOK_KINDS: HookKind[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}

export interface CdiHook {
  hookName: HookKind;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiEdits {
  env: string[];
  deviceNodes: CdiDeviceNode[];
  mounts: CdiMount[];
  hooks: CdiHook[];
  additionalGids: number[];
}

export interface CdiSpec {
  file: string;
  kind: string;
  edits: CdiEdits;
  devices: Map<string, CdiEdits>;
}

/** A fully qualified device name split into kind and name, or a reason it is not one. */
export function parseDeviceName(qualified: string): { kind: string; name: string } | string {
  const eq = qualified.indexOf('=');
  const slash = qualified.indexOf('/');
  if (eq < 0 || slash < 0 || slash > eq) return 'it is not of the form vendor.com/class=name';
  const vendor = qualified.slice(0, slash);
  const cls = qualified.slice(slash + 1, eq);
  const name = qualified.slice(eq + 1);
  if (!VENDOR.test(vendor)) return `the vendor ${JSON.stringify(vendor.slice(0, 64))} is not valid`;
  if (!CLASS.test(cls)) return `the class ${JSON.stringify(cls.slice(0, 64))} is not valid`;
  if (!NAME.test(name)) return `the device name ${JSON.stringify(name.slice(0, 64))} is not valid`;
  return { kind: `${vendor}/${cls}`, name };
}

/** The devices a container asks for: CDI_devices first, then cdi.k8s.io/ annotations; each once. */
export function requestedCdiDevices(cdiDevices: Array<{ name: string }> | undefined, annotations: Record<string, string> | undefined): string[] {
  const names: string[] = [];
  for (const d of cdiDevices ?? []) names.push(d.name);
  for (const [key, value] of Object.entries(annotations ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!key.startsWith(CDI_ANNOTATION_PREFIX)) continue;
    for (const part of value.split(',')) if (part.trim()) names.push(part.trim());
  }
  const unique = [...new Set(names)];
  if (unique.length > MAX_REQUESTED) throw invalidArgument(`the container asks for ${unique.length} CDI devices; at most ${MAX_REQUESTED} are supported`);
  for (const n of unique) {
    const parsed = parseDeviceName(n);
    if (typeof parsed === 'string') throw invalidArgument(`CDI device ${JSON.stringify(n.slice(0, 256))} is not a valid device name: ${parsed}`);
  }
  return unique;
}

class Invalid extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.includes('\0')) throw new Invalid(`${what} must be a string`);
  return v;
}

function optStr(v: unknown, what: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, what);
}

function absPath(v: unknown, what: string): string {
  const s = str(v, what);
  if (!isAbsolute(s) || s.length > 4096) throw new Invalid(`${what} ${JSON.stringify(s.slice(0, 128))} must be an absolute path`);
  return normalize(s);
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Invalid(`${what} must be a list of strings`);
  return v.map((x, i) => str(x, `${what}[${i}]`));
}

function uint(v: unknown, what: string, max = 0xffffffff): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new Invalid(`${what} must be a whole number from 0 to ${max}`);
  return v;
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Invalid(`${what} must be a list`);
  return v;
}

function parseEdits(v: unknown, what: string): CdiEdits {
  const edits: CdiEdits = { env: [], deviceNodes: [], mounts: [], hooks: [], additionalGids: [] };
  if (v === undefined || v === null) return edits;
  if (!isObject(v)) throw new Invalid(`${what} must be an object`);
  edits.env = strings(v.env, `${what}.env`);
  for (const e of edits.env) if (!/^[^=]+=/.test(e)) throw new Invalid(`${what}.env entry ${JSON.stringify(e.slice(0, 64))} is not NAME=value`);
  edits.deviceNodes = list(v.deviceNodes, `${what}.deviceNodes`).map((d, i) => {
    const w = `${what}.deviceNodes[${i}]`;
    if (!isObject(d)) throw new Invalid(`${w} must be an object`);
    const type = optStr(d.type, `${w}.type`);
    if (type !== undefined && !['b', 'c', 'u', 'p'].includes(type)) throw new Invalid(`${w}.type must be b, c, u or p`);
    const permissions = optStr(d.permissions, `${w}.permissions`);
    if (permissions !== undefined && !/^[rwm]{0,3}$/.test(permissions)) throw new Invalid(`${w}.permissions must be made of r, w and m`);
    return {
      path: absPath(d.path, `${w}.path`),
      hostPath: d.hostPath === undefined || d.hostPath === null || d.hostPath === '' ? undefined : absPath(d.hostPath, `${w}.hostPath`),
      type,
      major: uint(d.major, `${w}.major`),
      minor: uint(d.minor, `${w}.minor`),
      fileMode: uint(d.fileMode, `${w}.fileMode`, 0o7777),
      permissions,
      uid: uint(d.uid, `${w}.uid`),
      gid: uint(d.gid, `${w}.gid`),
    };
  });
  edits.mounts = list(v.mounts, `${what}.mounts`).map((m, i) => {
    const w = `${what}.mounts[${i}]`;
    if (!isObject(m)) throw new Invalid(`${w} must be an object`);
    return {
      hostPath: absPath(m.hostPath, `${w}.hostPath`),
      containerPath: absPath(m.containerPath, `${w}.containerPath`),
      type: optStr(m.type, `${w}.type`),
      options: strings(m.options, `${w}.options`),
    };
  });
  edits.hooks = list(v.hooks, `${what}.hooks`).map((h, i) => {
    const w = `${what}.hooks[${i}]`;
    if (!isObject(h)) throw new Invalid(`${w} must be an object`);
    const hookName = str(h.hookName, `${w}.hookName`) as HookKind;
    if (!HOOK_KINDS.includes(hookName)) throw new Invalid(`${w}.hookName must be one of ${HOOK_KINDS.join(', ')}`);
    return {
      hookName,
      path: absPath(h.path, `${w}.path`),
      args: strings(h.args, `${w}.args`),
      env: strings(h.env, `${w}.env`),
      timeout: uint(h.timeout, `${w}.timeout`, 86_400),
    };
  });
  edits.additionalGids = list(v.additionalGids, `${what}.additionalGids`).map((g, i) => uint(g, `${what}.additionalGids[${i}]`)!);
  return edits;
}

/** A spec file's text as a CDI spec; throws with the field that is wrong. */
export function parseCdiSpec(text: string, file: string): CdiSpec {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Invalid('it is not JSON');
  }
  if (!isObject(doc)) throw new Invalid('it is not a JSON object');
  str(doc.cdiVersion, 'cdiVersion');
  const kind = str(doc.kind, 'kind');
  const slash = kind.indexOf('/');
  if (slash < 0 || !VENDOR.test(kind.slice(0, slash)) || !CLASS.test(kind.slice(slash + 1)))
    throw new Invalid(`kind ${JSON.stringify(kind.slice(0, 64))} is not vendor.com/class`);
  const devices = new Map<string, CdiEdits>();
  const entries = list(doc.devices, 'devices');
  if (!entries.length) throw new Invalid('devices must list at least one device');
  for (const [i, d] of entries.entries()) {
    if (!isObject(d)) throw new Invalid(`devices[${i}] must be an object`);
    const name = str(d.name, `devices[${i}].name`);
    if (!NAME.test(name)) throw new Invalid(`devices[${i}].name ${JSON.stringify(name.slice(0, 64))} is not a valid device name`);
    if (devices.has(name)) throw new Invalid(`device ${name} is defined twice`);
    devices.set(name, parseEdits(d.containerEdits, `devices[${i}].containerEdits`));
  }
  return { file, kind, edits: parseEdits(doc.containerEdits, 'containerEdits'), devices };
}

export interface CdiRegistry {
  /** kind=name to the spec defining it (the highest-priority directory wins). */
  devices: Map<string, CdiSpec>;
  /** Devices defined by two spec files of one directory: unusable. */
  conflicts: Map<string, string[]>;
  /** Files that were skipped, with why. */
  problems: string[];
  /** YAML spec files seen (not read). */
  yaml: string[];
}

/** Reads a file within the size limit; undefined (with a problem noted) when it cannot be. */
async function readLimited(file: string, budget: { bytes: number }, problems: string[]): Promise<string | undefined> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  if (info.size > MAX_SPEC_BYTES) {
    problems.push(`${file}: larger than ${MAX_SPEC_BYTES >> 20} MiB`);
    return undefined;
  }
  if (info.size > budget.bytes) {
    problems.push(`${file}: not read, the spec files exceed ${MAX_TOTAL_BYTES >> 20} MiB in all`);
    return undefined;
  }
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) {
    problems.push(`${file}: cannot be opened`);
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(Math.min(info.size, MAX_SPEC_BYTES) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_SPEC_BYTES) {
      problems.push(`${file}: larger than ${MAX_SPEC_BYTES >> 20} MiB`);
      return undefined;
    }
    budget.bytes -= bytesRead;
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Reads every spec file of the directories (in order of rising priority). */
export async function loadCdiRegistry(dirs: string[]): Promise<CdiRegistry> {
  const registry: CdiRegistry = { devices: new Map(), conflicts: new Map(), problems: [], yaml: [] };
  const budget = { bytes: MAX_TOTAL_BYTES };
  for (const dir of dirs) {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    const names = (await readdir(dir).catch(() => [] as string[])).sort();
    const inDir = new Map<string, CdiSpec>();
    const conflicts = new Map<string, string[]>();
    let read = 0;
    for (const name of names) {
      const ext = extname(name).toLowerCase();
      const file = join(dir, name);
      if (ext === '.yaml' || ext === '.yml') {
        registry.yaml.push(file);
        continue;
      }
      if (ext !== '.json') continue;
      if (++read > MAX_SPEC_FILES) {
        registry.problems.push(`${dir}: more than ${MAX_SPEC_FILES} spec files; the rest are not read`);
        break;
      }
      const text = await readLimited(file, budget, registry.problems);
      if (text === undefined) continue;
      let spec: CdiSpec;
      try {
        spec = parseCdiSpec(text, file);
      } catch (err) {
        registry.problems.push(`${file}: ${err instanceof Invalid ? err.message : 'cannot be parsed'}`);
        continue;
      }
      for (const device of spec.devices.keys()) {
        const key = `${spec.kind}=${device}`;
        const other = inDir.get(key);
        if (other) conflicts.set(key, [...(conflicts.get(key) ?? [other.file]), file]);
        else inDir.set(key, spec);
      }
    }
    // A later directory overrides what earlier ones define, and its conflicts hide them too.
    for (const [key, spec] of inDir) {
      const files = conflicts.get(key);
      if (files) {
        registry.conflicts.set(key, files);
        registry.devices.delete(key);
      } else {
        registry.devices.set(key, spec);
        registry.conflicts.delete(key);
      }
    }
  }
  return registry;
}

export interface ResolvedCdi {
  edits: CdiEdits[];
  devices: Array<HostDevice & { containerPath: string; permissions: string }>;
}

/** The edits of the requested devices (each spec's own edits once), and their device nodes resolved on the host. */
export function resolveCdiDevices(requested: string[], registry: CdiRegistry, dirs: string[]): ResolvedCdi {
  const edits: CdiEdits[] = [];
  const specsApplied = new Set<CdiSpec>();
  for (const name of requested) {
    const conflict = registry.conflicts.get(name);
    if (conflict) throw invalidArgument(`CDI device ${name} is defined by more than one spec file (${conflict.join(', ')}); remove one of them`);
    const spec = registry.devices.get(name);
    if (!spec) {
      const notes: string[] = [];
      if (registry.yaml.length) notes.push(`YAML spec files are not read, only JSON: ${registry.yaml.slice(0, 5).join(', ')}`);
      if (registry.problems.length) notes.push(`spec files skipped: ${registry.problems.slice(0, 5).join('; ')}`);
      throw invalidArgument(
        `CDI device ${name} is not defined in any CDI spec file in ${dirs.join(', ') || '(no spec directories configured)'}${notes.length ? ` (${notes.join('; ')})` : ''}`,
      );
    }
    if (!specsApplied.has(spec)) {
      specsApplied.add(spec);
      edits.push(spec.edits);
    }
    edits.push(spec.devices.get(name.slice(spec.kind.length + 1))!);
  }
  const devices: ResolvedCdi['devices'] = [];
  for (const e of edits) {
    for (const node of e.deviceNodes) {
      const hostPath = node.hostPath ?? node.path;
      const host = deviceAt(hostPath);
      const type = node.type === 'u' ? 'c' : node.type;
      if (type === 'p') throw failedPrecondition(`CDI device node ${node.path}: fifo device nodes are not supported`);
      const kind = (type ?? host?.type) as 'c' | 'b' | undefined;
      const major = node.major ?? host?.major;
      const minor = node.minor ?? host?.minor;
      if (!kind || major === undefined || minor === undefined) {
        throw failedPrecondition(`CDI device node ${node.path}: ${hostPath} is not a device on this node and the spec does not give its type and numbers`);
      }
      devices.push({
        path: hostPath,
        containerPath: node.path,
        type: kind,
        major,
        minor,
        fileMode: node.fileMode ?? host?.fileMode ?? 0o666,
        uid: node.uid ?? host?.uid ?? 0,
        gid: node.gid ?? host?.gid ?? 0,
        permissions: node.permissions || 'rwm',
      });
    }
  }
  return { edits, devices };
}

/** Applies the environment, mounts, hooks and groups of CDI edits to a built spec (device nodes are already in it). */
export function applyCdiEdits(spec: Spec, edits: CdiEdits[]): void {
  for (const e of edits) {
    if (e.env.length && spec.process) {
      const env = spec.process.env ?? [];
      for (const entry of e.env) {
        const name = entry.slice(0, entry.indexOf('='));
        const i = env.findIndex((x) => x.startsWith(`${name}=`));
        if (i >= 0) env[i] = entry;
        else env.push(entry);
      }
      spec.process.env = env;
    }
    for (const m of e.mounts) {
      spec.mounts = (spec.mounts ?? []).filter((x) => x.destination !== m.containerPath);
      spec.mounts.push({
        destination: m.containerPath,
        source: m.hostPath,
        type: m.type || 'bind',
        options: m.options?.length ? m.options : ['rbind', 'rprivate'],
      });
    }
    for (const h of e.hooks) {
      const hook: Hook = {
        path: h.path,
        ...(h.args?.length ? { args: h.args } : {}),
        ...(h.env?.length ? { env: h.env } : {}),
        ...(h.timeout !== undefined ? { timeout: h.timeout } : {}),
      };
      spec.hooks = spec.hooks ?? {};
      (spec.hooks[h.hookName] ??= []).push(hook);
    }
    if (e.additionalGids.length && spec.process) {
      const gids = new Set(spec.process.user.additionalGids ?? []);
      for (const g of e.additionalGids) gids.add(g);
      spec.process.user.additionalGids = [...gids];
    }
  }
  // Mounts that CDI added go after those they sit under, as CDI sorts them.
  if (edits.some((e) => e.mounts.length) && spec.mounts) {
    const depth = (p: string) => p.split('/').filter(Boolean).length;
    const indexed = spec.mounts.map((m, i) => ({ m, i }));
    indexed.sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i);
    spec.mounts = indexed.map((x) => x.m);
  }
}

/**
 * Resolves CDI devices named after the spec was built (by NRI plugins) and applies
 * them: device nodes with their cgroup rules, then the edits.
 */
export async function addCdiDevices(spec: Spec, names: string[], dirs: string[]): Promise<void> {
  if (!names.length) return;
  const resolved = resolveCdiDevices(names, await loadCdiRegistry(dirs), dirs);
  const linux = (spec.linux ??= {});
  const resources = (linux.resources ??= {});
  for (const d of resolved.devices) {
    linux.devices = [
      ...(linux.devices ?? []).filter((x) => x.path !== d.containerPath),
      { path: d.containerPath, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid },
    ];
    resources.devices = [...(resources.devices ?? []), { allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions }];
  }
  applyCdiEdits(spec, resolved.edits);
}
