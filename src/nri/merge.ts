// Collecting the answers of several plugins to one event. Plugins are asked in
// index order; each sees the container as the plugins before it left it, and
// their adjustments add up. Every adjustable field has one owner: a second
// plugin that sets what another already set is an error naming both, as NRI
// specifies. A key prefixed with "-" (annotation, mount destination, env name,
// device path, ...) asks for removal; a plugin may then set it anew.
import { NriError } from './errors.ts';
import type {
  Container,
  ContainerAdjustment,
  ContainerAdjustmentOut,
  ContainerEviction,
  ContainerEvictionOut,
  ContainerUpdate,
  ContainerUpdateOut,
  LinuxResources,
  LinuxResourcesOut,
} from './types.ts';
import { quote } from '../errors.ts';

export function isMarkedForRemoval(key: string): boolean {
  return key.startsWith('-');
}

export function unmarked(key: string): string {
  return isMarkedForRemoval(key) ? key.slice(1) : key;
}

/** Which plugin set which field of which container. */
export class Owners {
  private readonly owners = new Map<string, string>();

  /** Claims field (and entry of a compound field) of container id for plugin. */
  claim(id: string, field: string, plugin: string, entry?: string): void {
    const key = ownerKey(id, field, entry);
    const other = this.owners.get(key);
    if (other !== undefined) {
      const owner = unmarked(other);
      // A plugin may set what it removed itself, and change what it set.
      if (owner !== plugin) {
        throw new NriError('invalid-adjustment', `plugins ${quote(plugin)} and ${quote(owner)} both tried to set ${describe(field, entry)}`);
      }
    }
    this.owners.set(key, plugin);
  }

  /** Records that plugin removed an entry: later plugins may not set it again. */
  clear(id: string, field: string, plugin: string, entry?: string): void {
    this.owners.set(ownerKey(id, field, entry), `-${plugin}`);
  }
}

function ownerKey(id: string, field: string, entry?: string): string {
  return entry === undefined ? `${id}\0${field}` : `${id}\0${field}\0${entry}`;
}

function describe(field: string, entry?: string): string {
  return entry === undefined ? field : `${field} ${quote(entry)}`;
}

const MEMORY_FIELDS = ['limit', 'reservation', 'swap', 'kernel', 'kernel_tcp', 'swappiness', 'disable_oom_killer', 'use_hierarchy'] as const;
const CPU_VALUE_FIELDS = ['shares', 'quota', 'period', 'realtime_runtime', 'realtime_period'] as const;
const CPU_SET_FIELDS = ['cpus', 'mems'] as const;

type Wrapped = { value?: unknown } | null | undefined;

/** Merges resources from a plugin into target, claiming every field it sets. */
function mergeResources(target: LinuxResources, source: LinuxResourcesOut | null, owners: Owners, id: string, plugin: string): void {
  if (!source) return;
  if (source.memory) {
    const from = source.memory as unknown as Record<string, Wrapped>;
    const to = (target.memory ??= {}) as Record<string, Wrapped>;
    for (const field of MEMORY_FIELDS) {
      if (!from[field]) continue;
      owners.claim(id, `memory ${field}`, plugin);
      to[field] = { value: from[field]!.value };
    }
  }
  if (source.cpu) {
    const from = source.cpu as unknown as Record<string, Wrapped | string>;
    const to = (target.cpu ??= {}) as Record<string, Wrapped | string>;
    for (const field of CPU_VALUE_FIELDS) {
      const value = from[field] as Wrapped;
      if (!value) continue;
      owners.claim(id, `cpu ${field}`, plugin);
      to[field] = { value: value.value };
    }
    for (const field of CPU_SET_FIELDS) {
      const value = from[field] as string;
      if (!value) continue;
      owners.claim(id, `cpuset ${field}`, plugin);
      to[field] = value;
    }
  }
  for (const limit of source.hugepage_limits) {
    owners.claim(id, 'hugepage limit', plugin, limit.page_size);
    target.hugepage_limits = [...(target.hugepage_limits ?? []).filter((l) => l.page_size !== limit.page_size), limit];
  }
  for (const [key, value] of Object.entries(source.unified)) {
    owners.claim(id, 'unified cgroup setting', plugin, key);
    (target.unified ??= {})[key] = value;
  }
  if (source.devices.length > 0) target.devices = [...(target.devices ?? []), ...source.devices];
  if (source.blockio_class) {
    owners.claim(id, 'blockio class', plugin);
    target.blockio_class = { value: source.blockio_class.value };
  }
  if (source.rdt_class) {
    owners.claim(id, 'RDT class', plugin);
    target.rdt_class = { value: source.rdt_class.value };
  }
  if (source.pids) {
    owners.claim(id, 'pids limit', plugin);
    target.pids = { limit: source.pids.limit };
  }
}

/** Updates plugins requested for containers, merged per container. */
export class Updates {
  private readonly byId = new Map<string, ContainerUpdate & { resources: LinuxResources }>();
  private readonly owners: Owners;
  /** The container being created, which plugins may adjust but not update. */
  private readonly creating: string | undefined;

  constructor(owners = new Owners(), creating?: string) {
    this.owners = owners;
    this.creating = creating;
  }

  add(updates: ContainerUpdateOut[], plugin: string): void {
    for (const update of updates) {
      const id = update.container_id;
      if (!id) throw new NriError('invalid-adjustment', `plugin ${quote(plugin)} asked to update a container without naming it`);
      if (id === this.creating) {
        throw new NriError('invalid-adjustment', `plugin ${quote(plugin)} asked to update container ${id} while it is being created`);
      }
      const existing = this.byId.get(id);
      const entry = existing ?? { container_id: id, ignore_failure: update.ignore_failure, resources: {} };
      entry.ignore_failure = (entry.ignore_failure ?? false) && update.ignore_failure;
      // Work on a copy so that a refused update leaves nothing behind.
      const resources = structuredClone(entry.resources);
      try {
        mergeResources(resources, update.linux?.resources ?? null, this.owners, id, plugin);
      } catch (err) {
        if (update.ignore_failure) continue;
        throw err;
      }
      entry.resources = resources;
      this.byId.set(id, entry);
    }
  }

  /** Merges the resources plugins ask for into the resources of an update in progress. */
  mergeInto(id: string, target: LinuxResources, updates: ContainerUpdateOut[], plugin: string): ContainerUpdateOut[] {
    const others: ContainerUpdateOut[] = [];
    for (const update of updates) {
      if (update.container_id !== id) {
        others.push(update);
        continue;
      }
      const resources = structuredClone(target);
      try {
        mergeResources(resources, update.linux?.resources ?? null, this.owners, id, plugin);
      } catch (err) {
        if (update.ignore_failure) continue;
        throw err;
      }
      Object.assign(target, resources);
    }
    return others;
  }

  list(): ContainerUpdate[] {
    return [...this.byId.values()].map(({ container_id, ignore_failure, resources }) => ({ container_id, ignore_failure, linux: { resources } }));
  }
}

/** Evictions a plugin asked for, with the plugin's name in the reason. */
export function evictions(list: ContainerEvictionOut[], plugin: string): ContainerEviction[] {
  return list.map((e) => ({ container_id: e.container_id, reason: `evicted by NRI plugin ${plugin}: ${e.reason || 'no reason given'}` }));
}

export interface CreateResult {
  adjust: ContainerAdjustment;
  updates: ContainerUpdate[];
  evictions: ContainerEviction[];
}

/** The answers of all plugins to one CreateContainer event. */
export class CreateCollector {
  /** The container as the next plugin sees it: with earlier adjustments applied. */
  readonly container: Container;
  private readonly adjust: ContainerAdjustment & Required<Pick<ContainerAdjustment, 'annotations' | 'mounts' | 'env' | 'rlimits' | 'CDI_devices'>>;
  private readonly owners = new Owners();
  private readonly updates: Updates;
  private readonly evicted: ContainerEviction[] = [];

  constructor(container: Container) {
    this.container = structuredClone(container);
    this.container.annotations ??= {};
    this.container.mounts ??= [];
    this.container.env ??= [];
    this.container.rlimits ??= [];
    this.container.hooks ??= {};
    this.container.linux ??= {};
    this.container.linux.devices ??= [];
    this.container.linux.resources ??= {};
    this.container.linux.namespaces ??= [];
    this.container.linux.sysctl ??= {};
    this.adjust = { annotations: {}, mounts: [], env: [], rlimits: [], CDI_devices: [], hooks: {}, linux: {} };
    this.updates = new Updates(this.owners, container.id);
  }

  apply(plugin: string, answer: { adjust: ContainerAdjustmentOut | null; update: ContainerUpdateOut[]; evict: ContainerEvictionOut[] }): void {
    if (answer.adjust) this.adjustContainer(plugin, answer.adjust);
    this.updates.add(answer.update, plugin);
    this.evicted.push(...evictions(answer.evict, plugin));
  }

  result(): CreateResult {
    return { adjust: this.adjust, updates: this.updates.list(), evictions: this.evicted };
  }

  private adjustContainer(plugin: string, a: ContainerAdjustmentOut): void {
    const id = this.container.id ?? '';
    const c = this.container as Required<Container>;
    const linux = c.linux as Required<NonNullable<Container['linux']>>;
    const out = this.adjust;
    const outLinux = (out.linux ??= {});

    // Annotations, sysctls: maps keyed by name.
    this.adjustMap(a.annotations, c.annotations, out.annotations, 'annotation', id, plugin);
    this.adjustMap(a.linux?.sysctl ?? {}, linux.sysctl, (outLinux.sysctl ??= {}), 'sysctl', id, plugin);

    // Mounts, env, devices: lists keyed by destination, name, path.
    c.mounts = this.adjustList(
      a.mounts,
      c.mounts,
      out.mounts,
      (m) => m.destination ?? '',
      (m, key) => ({ ...m, destination: key }),
      'mount',
      id,
      plugin,
    );
    const env = this.adjustList(
      a.env,
      c.env.map((e) => ({ key: e.split('=', 1)[0], value: e.slice(e.indexOf('=') + 1) })),
      out.env,
      (e) => e.key ?? '',
      (e, key) => ({ ...e, key }),
      'environment variable',
      id,
      plugin,
    );
    c.env = env.map((e) => `${e.key}=${e.value ?? ''}`);
    linux.devices = this.adjustList(
      a.linux?.devices ?? [],
      linux.devices,
      (outLinux.devices ??= []),
      (d) => d.path ?? '',
      (d, key) => ({ ...d, path: key }),
      'device',
      id,
      plugin,
    );

    if (a.args.length > 0) {
      const args = a.args[0] === '' ? a.args.slice(1) : a.args;
      this.owners.claim(id, 'args', plugin);
      out.args = [...args];
      c.args = [...args];
    }

    // Hooks add up; nobody owns them.
    if (a.hooks) {
      const hooks = a.hooks;
      const outHooks = (out.hooks ??= {});
      for (const kind of ['prestart', 'create_runtime', 'create_container', 'start_container', 'poststart', 'poststop'] as const) {
        if (hooks[kind].length === 0) continue;
        outHooks[kind] = [...(outHooks[kind] ?? []), ...hooks[kind]];
        c.hooks![kind] = [...(c.hooks![kind] ?? []), ...hooks[kind]];
      }
    }

    for (const limit of a.rlimits) {
      this.owners.claim(id, 'rlimit', plugin, limit.type);
      out.rlimits = [...out.rlimits.filter((l) => l.type !== limit.type), limit];
      c.rlimits = [...c.rlimits.filter((l) => l.type !== limit.type), limit];
    }
    for (const device of a.CDI_devices) {
      this.owners.claim(id, 'CDI device', plugin, device.name);
      out.CDI_devices.push(device);
    }

    const l = a.linux;
    if (!l) return;
    mergeResources((outLinux.resources ??= {}), l.resources, this.owners, id, plugin);
    mergeResources((linux.resources ??= {}), l.resources, new Owners(), id, plugin);
    if (l.cgroups_path) {
      this.owners.claim(id, 'cgroups path', plugin);
      outLinux.cgroups_path = l.cgroups_path;
      linux.cgroups_path = l.cgroups_path;
    }
    if (l.oom_score_adj) {
      this.owners.claim(id, 'OOM score adjustment', plugin);
      outLinux.oom_score_adj = { value: l.oom_score_adj.value };
      linux.oom_score_adj = { value: l.oom_score_adj.value };
    }
    for (const [field, label] of [
      ['io_priority', 'I/O priority'],
      ['seccomp_policy', 'seccomp policy'],
      ['scheduler', 'scheduling policy'],
      ['memory_policy', 'memory policy'],
    ] as const) {
      if (!l[field]) continue;
      this.owners.claim(id, label, plugin);
      (outLinux as Record<string, unknown>)[field] = l[field];
      if (field !== 'memory_policy') (linux as Record<string, unknown>)[field] = l[field];
    }
    for (const ns of l.namespaces) {
      const type = unmarked(ns.type);
      this.owners.claim(id, 'namespace', plugin, type);
      linux.namespaces = linux.namespaces.filter((n) => n.type !== type);
      if (!isMarkedForRemoval(ns.type)) linux.namespaces.push(ns);
      outLinux.namespaces = [...(outLinux.namespaces ?? []), ns];
    }
    for (const [name, device] of Object.entries(l.net_devices)) {
      this.owners.claim(id, 'network device', plugin, unmarked(name));
      (outLinux.net_devices ??= {})[name] = device;
    }
    if (l.rdt) {
      const rdt = (outLinux.rdt ??= {});
      if (l.rdt.remove) Object.assign(rdt, { remove: true, clos_id: null, schemata: null, enable_monitoring: null });
      for (const field of ['clos_id', 'schemata', 'enable_monitoring'] as const) {
        if (!l.rdt[field]) continue;
        this.owners.claim(id, `RDT ${field}`, plugin);
        (rdt as Record<string, unknown>)[field] = l.rdt[field];
        rdt.remove = false;
      }
    }
  }

  /** Applies removals ("-key") and settings of a map-valued field. */
  private adjustMap(
    from: Record<string, string>,
    container: Record<string, string>,
    out: Record<string, string>,
    label: string,
    id: string,
    plugin: string,
  ): void {
    for (const key of Object.keys(from)) {
      if (!isMarkedForRemoval(key)) continue;
      const name = unmarked(key);
      this.owners.clear(id, label, plugin, name);
      delete container[name];
      delete out[name];
      out[key] = '';
    }
    for (const [key, value] of Object.entries(from)) {
      if (isMarkedForRemoval(key)) continue;
      this.owners.claim(id, label, plugin, key);
      container[key] = value;
      out[key] = value;
      delete out[`-${key}`];
    }
  }

  /** Applies removals and additions of a list-valued field whose entries have a key. */
  private adjustList<T>(
    from: T[],
    container: T[],
    out: T[],
    keyOf: (t: T) => string,
    withKey: (t: T, key: string) => T,
    label: string,
    id: string,
    plugin: string,
  ): T[] {
    if (from.length === 0) return container;
    const removed = new Set<string>();
    const added: T[] = [];
    for (const entry of from) {
      const key = keyOf(entry);
      if (isMarkedForRemoval(key)) removed.add(unmarked(key));
      else added.push(entry);
    }
    const addedKeys = new Set(added.map(keyOf));
    for (const key of removed) this.owners.clear(id, label, plugin, key);
    const kept = out.filter((e) => !removed.has(unmarked(keyOf(e))) && !addedKeys.has(unmarked(keyOf(e))));
    for (const entry of added) this.owners.claim(id, label, plugin, keyOf(entry));
    for (const key of removed) {
      if (!addedKeys.has(key)) kept.push(withKey(from.find((e) => unmarked(keyOf(e)) === key)!, `-${key}`));
    }
    out.splice(0, out.length, ...kept, ...added);
    return [...container.filter((e) => !removed.has(keyOf(e)) && !addedKeys.has(keyOf(e))), ...added];
  }
}

/** The answers of all plugins to one UpdateContainer event. */
export class UpdateCollector {
  /** The resources the container is being updated to, as plugins changed them. */
  readonly resources: LinuxResources;
  private readonly id: string;
  private readonly owners = new Owners();
  private readonly updates: Updates;
  private readonly evicted: ContainerEviction[] = [];

  constructor(id: string, resources: LinuxResources) {
    this.id = id;
    this.resources = structuredClone(resources);
    this.updates = new Updates(this.owners);
  }

  apply(plugin: string, answer: { update: ContainerUpdateOut[]; evict?: ContainerEvictionOut[] }): void {
    const others = this.updates.mergeInto(this.id, this.resources, answer.update, plugin);
    this.updates.add(others, plugin);
    this.evicted.push(...evictions(answer.evict ?? [], plugin));
  }

  result(): { resources: LinuxResources; updates: ContainerUpdate[]; evictions: ContainerEviction[] } {
    return { resources: this.resources, updates: this.updates.list(), evictions: this.evicted };
  }
}
