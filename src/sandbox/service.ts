// The sandbox service: the pod lifecycle (run, stop, remove), its state
// machine and records, name reservation, status and listing. Namespaces,
// files, cgroups and CNI are delegated to their own modules.
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { ContainerStatus } from '../generated/runtime/v1/ContainerStatus.ts';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.ts';
import type { PodSandbox } from '../generated/runtime/v1/PodSandbox.ts';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';
import type { PodSandboxFilter__Output } from '../generated/runtime/v1/PodSandboxFilter.ts';
import type { PodSandboxStatus } from '../generated/runtime/v1/PodSandboxStatus.ts';
import { RecordStore } from '../store/store.ts';
import { KeyedLock } from '../store/lock.ts';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, quote } from '../errors.ts';
import {
  addProcess,
  cgroupDirs,
  cgroupFsPath,
  checkResources,
  createCgroup,
  killCgroupProcesses,
  podCgroupPath,
  podResources,
  removeCgroup,
  removeCgroupIfUnused,
  writeResources,
} from '../cgroups/cgroups.ts';
import { removeTaggedRules } from '../network/iptables.ts';
import {
  CniDelError,
  CniError,
  CniRunner,
  parseBandwidth,
  resultIps,
  type CniAttachment,
  type CniCapabilityArgs,
  type CniPortMapping,
} from '../network/cni.ts';
import type { SandboxRecord, SandboxState } from './record.ts';
import { buildHosts, buildResolvConf, checkHostname, mountShm, podFilePaths, unmount, writePodFiles } from './files.ts';
import { checkSysctls } from './sysctl.ts';
import { refuseNul } from '../oci/request-checks.ts';
import { matchesFilter } from './filter.ts';
import { isNamespaceFile, isNamespaceFileSync, pinNamespaces, pinnedPodIds, unpinPodNamespaces } from './namespaces.ts';
import { infraAlive, infraAliveSync, killInfra, startInfra } from './infra.ts';
import { clampOomScoreAdj, setRestrictOomScoreAdj } from './oom.ts';
import { checkUserNamespace, NO_USER_NAMESPACES, type UserNamespaceSupport } from '../oci/features.ts';
import { NO_POD_NRI, type PodNriHooks } from './nri-hooks.ts';

/** Pod resources and overhead that cannot become cgroup files are the client's error. */
function checkPodResources(resources: LinuxContainerResources__Output | null | undefined, overhead: LinuxContainerResources__Output | null | undefined): void {
  try {
    checkResources(resources);
    checkResources(overhead);
  } catch (err) {
    throw invalidArgument((err as Error).message);
  }
}

/** What the sandbox service needs from the container service. */
export interface PodContainers {
  /** Stops every container of the pod: SIGTERM, then SIGKILL after the timeout. */
  stopAll(sandboxId: string, timeoutSeconds: number): Promise<void>;
  /** Removes every container of the pod (stopping running ones first). */
  removeAll(sandboxId: string): Promise<void>;
  statuses(sandboxId: string): Promise<ContainerStatus[]>;
  /** The pid of a running container of the pod (in the pod's namespaces), if any. */
  runningPid?(sandboxId: string): number | undefined;
  /** Runs fn while no container of the pod is being created or started. */
  exclusive?<R>(sandboxId: string, fn: () => Promise<R>): Promise<R>;
}

const NO_CONTAINERS: PodContainers = {
  async stopAll() {},
  async removeAll() {},
  async statuses() {
    return [];
  },
};

/**
 * How long containers get to stop gracefully when their pod is stopped. Short:
 * kubelet has already stopped them with the pod's grace period by then, and
 * clients such as crictl call with a deadline of a few seconds.
 */
const STOP_TIMEOUT_SECONDS = 1;
/** The infra process's oom_score_adj: the last thing to be killed, as a pause process is. */
const INFRA_OOM_SCORE_ADJ = -998;

const nowNs = () => Date.now() * 1_000_000;

/**
 * A pod network whose CNI DEL could not run because plugins are not
 * installed: kept (with the pod's network namespace still pinned) until the
 * plugins are back, so that the pod itself can be stopped and removed.
 */
interface PendingNetworkCleanup {
  id: string;
  name: string;
  namespace: string;
  attachment: CniAttachment;
  /** The pinned network namespace file, or '' when it was already gone. */
  netns: string;
  missing: string[];
  since: number;
}

/** How often pending network cleanups are tried again (also at start and on SIGHUP). */
const NETWORK_RETRY_MS = 30_000;
/**
 * How long ListPodSandbox takes a ready pod's infra process and network
 * namespace, once found alive, as still alive (a /proc read and a statfs
 * per pod; kubelet relists every second). Past that, the list answers what
 * it knew and looks again in the background, off the call: a pod whose
 * infra process died outside tscri lists as not ready from the next list
 * after that look on. A stop or removal by tscri shows at once (the
 * record's own state is read first), and PodSandboxStatus always looks.
 */
const LIST_LIVENESS_MS = 1000;

/** What ListPodSandbox last answered for a record, when its liveness was last checked, and whether a check is under way. */
interface Listed {
  item: Readonly<PodSandbox> & { id: string; state: SandboxState; created_at: number; labels: Record<string, string> };
  checkedAt: number;
  checking?: boolean;
}

/**
 * Whether the pod cgroup is tscri's to set limits on: one it named or made.
 * A cgroup_parent that already existed is kubelet's pod cgroup, whose limits
 * kubelet sets itself (the sandbox resources it sends sum only the limits
 * that are given, and would cap a pod with an unlimited container); tscri
 * leaves it alone, as containerd does.
 */
function ownsPodCgroup(record: SandboxRecord): boolean {
  return !record.config.linux?.cgroup_parent || record.cgroupCreated === true;
}

/** How log lines name a pod: its id, and its name and namespace from the request. */
function podLabel(record: SandboxRecord): { id: string; name: string; namespace: string } {
  return { id: record.id, name: record.config.metadata?.name ?? '', namespace: record.config.metadata?.namespace ?? '' };
}

export interface SandboxStatusResult {
  status: PodSandboxStatus;
  info: Record<string, string>;
  containers_statuses: ContainerStatus[];
  timestamp: number;
}

export class SandboxService {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly store: RecordStore<SandboxRecord>;
  private readonly pendingNetworks: RecordStore<PendingNetworkCleanup>;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly locks = new KeyedLock();
  /** Reserved names to the id holding them, until that sandbox is removed. */
  private readonly names = new Map<string, string>();
  private readonly listed = new WeakMap<SandboxRecord, Listed>();
  private containers: PodContainers = NO_CONTAINERS;
  private nri: PodNriHooks = NO_POD_NRI;
  private podCidr = '';
  private userns: UserNamespaceSupport = NO_USER_NAMESPACES;

  constructor(config: Config, log: Logger) {
    this.config = config;
    this.log = log.child({ service: 'sandbox' });
    this.store = new RecordStore<SandboxRecord>(join(config.root, 'sandboxes'));
    this.pendingNetworks = new RecordStore<PendingNetworkCleanup>(join(config.root, 'network-cleanup'));
    setRestrictOomScoreAdj(config.pod.restrict_oom_score_adj);
  }

  /** Loads records; sandboxes whose creation a crash interrupted become NOTREADY so they can be removed. */
  async load(): Promise<void> {
    await this.pendingNetworks.load();
    for (const record of await this.store.load()) {
      if (record.name) this.names.set(record.name, record.id);
      if (record.creating) {
        record.creating = false;
        record.state = 'SANDBOX_NOTREADY';
        // What the interrupted creation made goes now (network, shm, every pinned namespace), whatever the record got to say.
        await this.teardown(record).catch((err) =>
          this.log.warn({ id: record.id, err: (err as Error).message }, 'cannot undo an interrupted pod sandbox creation; removing the pod retries'),
        );
        await this.store.put(record);
      }
    }
    // Namespaces pinned for a pod whose record never reached the disk (a crash right at the start of RunPodSandbox).
    for (const id of await pinnedPodIds(this.config.state)) {
      if (this.store.get(id) || this.pendingNetworks.get(id)) continue;
      this.log.warn({ id }, 'unpinning the namespaces of a pod sandbox that has no record');
      await unpinPodNamespaces(this.config.state, id).catch((err) => this.log.error({ id, err: (err as Error).message }, 'cannot unpin namespaces'));
    }
    this.log.info({ sandboxes: this.store.list().length }, 'sandboxes loaded');
    await this.retryNetworkCleanups();
    this.retryTimer = setInterval(() => void this.retryNetworkCleanups(), NETWORK_RETRY_MS);
    this.retryTimer.unref();
  }

  close(): void {
    clearInterval(this.retryTimer);
  }

  /** Pod networks whose CNI DEL waits for plugins to be installed. */
  pendingNetworkCleanups(): PendingNetworkCleanup[] {
    return this.pendingNetworks.list();
  }

  /**
   * Runs the CNI DEL of each pending network whose plugins are installed
   * now, then unpins its network namespace. Safe to call at any time.
   */
  async retryNetworkCleanups(): Promise<void> {
    for (const pending of this.pendingNetworks.list()) {
      await this.locks.with(`network-${pending.id}`, async () => {
        if (!this.pendingNetworks.get(pending.id)) return;
        const cni = this.cni();
        const missing = await cni.missingPlugins(pending.attachment.list);
        if (missing.length) return;
        const netns = pending.netns && (await isNamespaceFile(pending.netns)) ? pending.netns : '';
        try {
          await cni.del(pending.attachment, netns);
          if (!netns) await removeTaggedRules(pending.id);
        } catch (err) {
          this.log.warn(
            { id: pending.id, name: pending.name, err: (err as Error).message },
            'the network cleanup of a pod sandbox failed again; retrying later',
          );
          return;
        }
        // The pod is stopped or gone: its network namespace has nothing left to hold.
        await unpinPodNamespaces(this.config.state, pending.id, { network: pending.netns || undefined });
        await this.pendingNetworks.delete(pending.id);
        this.log.info(
          { id: pending.id, name: pending.name, namespace: pending.namespace },
          'pod sandbox network cleaned up now that its CNI plugins are installed',
        );
      });
    }
  }

  setContainers(containers: PodContainers): void {
    this.containers = containers;
  }

  /** Which runtime handlers can run pods in user namespaces. */
  setRuntimeFeatures(features: UserNamespaceSupport): void {
    this.userns = features;
  }

  setNri(nri: PodNriHooks): void {
    this.nri = nri;
  }

  /** Every sandbox record that is fully created. */
  records(): SandboxRecord[] {
    return this.store.list().filter((r) => !r.creating);
  }

  /** A sandbox by full id or unique prefix. */
  get(idOrPrefix: string): SandboxRecord | undefined {
    return this.store.find(idOrPrefix);
  }

  /** The pod CIDR from UpdateRuntimeConfig, passed to CNI plugins declaring ipRanges. */
  setPodCidr(cidr: string): void {
    if (cidr && !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(cidr)) throw invalidArgument(`invalid pod CIDR ${quote(cidr)}`);
    this.podCidr = cidr;
    this.log.info({ podCidr: cidr }, 'pod CIDR updated');
  }

  getPodCidr(): string {
    return this.podCidr;
  }

  private cni(): CniRunner {
    return new CniRunner({ confDir: this.config.cni.conf_dir, binDirs: this.config.cni.bin_dirs, builtinLoopback: this.config.cni.builtin_loopback });
  }

  async run(config: PodSandboxConfig__Output, runtimeHandler: string): Promise<string> {
    const plan = this.plan(config, runtimeHandler);
    const id = randomBytes(32).toString('hex');
    const holder = this.names.get(plan.name);
    if (holder) throw alreadyExists(`pod sandbox name ${plan.name} is reserved by sandbox ${holder}; remove it first or use a new attempt`);
    this.names.set(plan.name, id);
    return this.locks.with(id, async () => {
      const dir = join(this.config.state, 'pods', id);
      const record: SandboxRecord = {
        id,
        name: plan.name,
        config,
        state: 'SANDBOX_NOTREADY',
        creating: true,
        createdAt: nowNs(),
        runtimeHandler: plan.handler,
        namespaces: {},
        cgroupParent: plan.cgroup(id),
        dir,
        files: podFilePaths(dir, !plan.hostIpc),
        hostname: plan.hostname,
        ips: [],
        networkSetUp: false,
        resources: { overhead: config.linux?.overhead ?? null, resources: config.linux?.resources ?? null },
      };
      try {
        await this.store.put(record);
        await this.setUp(record, plan);
        await this.nri.runPodSandbox(record);
        record.state = 'SANDBOX_READY';
        record.creating = false;
        await this.store.put(record);
      } catch (err) {
        this.log.warn({ id, err: (err as Error).message }, 'pod sandbox setup failed; undoing it');
        try {
          await this.teardown(record);
          await this.removeFiles(record);
          await this.store.delete(id);
          this.names.delete(plan.name);
        } catch (cleanupErr) {
          // The record stays (NOTREADY) so that stop/remove can finish the cleanup.
          record.creating = false;
          record.state = 'SANDBOX_NOTREADY';
          await this.store.put(record).catch(() => undefined);
          this.log.error({ id, err: (cleanupErr as Error).message }, 'undoing a failed pod sandbox left resources; remove the sandbox to retry');
        }
        throw err;
      }
      this.log.info({ ...podLabel(record), ips: record.ips }, 'pod sandbox ready');
      return id;
    });
  }

  /** Validates a request and works out everything about the pod that does not touch the system. */
  private plan(config: PodSandboxConfig__Output, runtimeHandler: string) {
    refuseNul(config, 'config');
    const md = config.metadata;
    if (!md?.name || !md.namespace || !md.uid) throw invalidArgument('pod sandbox metadata must give name, namespace and uid');
    for (const [key, value] of [
      ['name', md.name],
      ['namespace', md.namespace],
      ['uid', md.uid],
    ] as const) {
      if (/[\s/;=\0]/.test(value) || value.length > 253)
        throw invalidArgument(`pod sandbox metadata ${key} ${quote(value)} is invalid: no whitespace, '/', ';' or '=' and at most 253 characters`);
    }
    if (config.log_directory && (!config.log_directory.startsWith('/') || config.log_directory.split('/').includes('..'))) {
      throw invalidArgument(`log_directory ${quote(config.log_directory)} must be an absolute path without ..`);
    }
    const handler = runtimeHandler || this.config.runtime.default_handler;
    if (!this.config.runtime.handlers[handler]) {
      throw invalidArgument(
        `runtime handler ${quote(runtimeHandler)} is not configured; configured handlers: ${Object.keys(this.config.runtime.handlers).join(', ')}`,
      );
    }
    const ns = config.linux?.security_context?.namespace_options;
    checkUserNamespace(ns?.userns_options, handler, this.userns);
    const hostNetwork = ns?.network === 'NODE';
    const hostIpc = ns?.ipc === 'NODE';
    // An absent namespace_options (or field) is the proto's zero value, POD: one pid namespace for the pod.
    const sharedPid = (ns?.pid ?? 'POD') === 'POD';
    let sysctls: Array<[string, string]>;
    try {
      sysctls = checkSysctls(config.linux?.sysctls ?? {}, { net: !hostNetwork, ipc: !hostIpc });
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    let resolvConf: string | undefined;
    try {
      resolvConf = buildResolvConf(config.dns_config);
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    const hostname = config.hostname || (hostNetwork ? osHostname() : md.name.slice(0, 63));
    try {
      checkHostname(hostname);
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    const portMappings: CniPortMapping[] = [];
    for (const pm of config.port_mappings ?? []) {
      if (pm.container_port <= 0 || pm.container_port > 65535 || pm.host_port < 0 || pm.host_port > 65535) {
        throw invalidArgument(`invalid port mapping ${pm.host_port}:${pm.container_port}: ports are 1-65535`);
      }
      if (pm.host_ip && !isIP(pm.host_ip)) throw invalidArgument(`port mapping host_ip ${quote(pm.host_ip.slice(0, 64))} is not an IP address`);
      if (pm.host_port > 0)
        portMappings.push({
          hostPort: pm.host_port,
          containerPort: pm.container_port,
          protocol: String(pm.protocol || 'TCP').toLowerCase(),
          ...(pm.host_ip ? { hostIP: pm.host_ip } : {}),
        });
    }
    checkPodResources(config.linux?.resources, config.linux?.overhead);
    const driver = this.config.cgroup_driver;
    const cgroupParent = config.linux?.cgroup_parent ?? '';
    try {
      podCgroupPath(cgroupParent, 'x', driver, this.config.default_cgroup_parent);
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    const bandwidth: NonNullable<CniCapabilityArgs['bandwidth']> = {};
    try {
      const ingress = config.annotations?.['kubernetes.io/ingress-bandwidth'];
      const egress = config.annotations?.['kubernetes.io/egress-bandwidth'];
      // Burst as large as the kernel allows: Kubernetes gives only rates.
      if (ingress) Object.assign(bandwidth, { ingressRate: parseBandwidth(ingress), ingressBurst: 2 ** 31 - 1 });
      if (egress) Object.assign(bandwidth, { egressRate: parseBandwidth(egress), egressBurst: 2 ** 31 - 1 });
    } catch (err) {
      throw invalidArgument((err as Error).message);
    }
    return {
      name: `${md.name}_${md.namespace}_${md.uid}_${md.attempt}`,
      handler,
      hostNetwork,
      hostIpc,
      sharedPid,
      sysctls,
      resolvConf,
      hostname,
      portMappings,
      bandwidth,
      cgroup: (id: string) => podCgroupPath(cgroupParent, id, driver, this.config.default_cgroup_parent),
    };
  }

  /**
   * Creates what the pod holds. The network (CNI ADD, the slowest part) is set
   * up while the cgroups, /dev/shm and the infra process are made: both need
   * only the pinned namespaces. Record writes are queued so that the last
   * one on disk is the newest; only the first, the one before ADD (the IPAM
   * state a DEL must release outlives a reboot) and the final READY (in run)
   * are synced: what the other steps record (cgroups, namespace pins, the
   * infra process) does not survive a power cut, and a daemon crash reads
   * them from the page cache.
   */
  private async setUp(record: SandboxRecord, plan: ReturnType<SandboxService['plan']>): Promise<void> {
    const { config } = record;
    let queue = Promise.resolve();
    const save = (durable = false) => {
      const write = queue.then(() => this.store.put(record, { durable }));
      queue = write.catch(() => undefined);
      return write;
    };
    await mkdir(record.dir, { recursive: true, mode: 0o700 });
    // Container logs go under the pod's log directory; kubelet usually makes it, CRI-O and we make sure.
    const logDir = config.log_directory ? mkdir(config.log_directory, { recursive: true, mode: 0o755 }) : Promise.resolve(undefined);

    const fsPath = cgroupFsPath(record.cgroupParent, this.config.cgroup_driver);
    const cgroup = (async () => {
      record.cgroupCreated = await createCgroup(fsPath);
      await save();
      if (ownsPodCgroup(record)) await writeResources(fsPath, podResources(config.linux?.resources ?? null, config.linux?.overhead ?? null));
    })();
    const pinning = (async () => {
      const pinned = await pinNamespaces(this.config.state, record.id, {
        net: !plan.hostNetwork,
        ipc: !plan.hostIpc,
        uts: !plan.hostNetwork,
        hostname: plan.hostname,
        sysctls: plan.sysctls,
      });
      record.namespaces = { ...pinned, ...record.namespaces };
      await save();
      return pinned;
    })();
    const infra = (async () => {
      const pinned = await pinning;
      await cgroup;
      if (record.files.shm) await mountShm(record.files.shm, this.config.pod.shm_size);
      if (!plan.sharedPid) return;
      // Its own cgroup: on cgroup v2 a process in the pod cgroup would keep
      // controllers from reaching the containers' cgroups beside it.
      record.infraCgroup = join(fsPath, this.config.cgroup_driver === 'systemd' ? `tscri-sandbox-${record.id}.scope` : `sandbox-${record.id}`);
      await save();
      await createCgroup(record.infraCgroup);
      if (
        !(await access(this.config.pod.infra_path, constants.X_OK).then(
          () => true,
          () => false,
        ))
      ) {
        throw failedPrecondition(
          `the pod infra process ${this.config.pod.infra_path} (for a pod sharing one pid namespace) is not installed or not executable: install it (Debian: apt-get install catatonit) or set [pod] infra_path in the config`,
        );
      }
      const started = await startInfra({
        infraPath: this.config.pod.infra_path,
        netns: pinned.network,
        ipcns: pinned.ipc,
        utsns: pinned.uts,
        cgroupProcs: cgroupDirs(record.infraCgroup).map((d) => join(d, 'cgroup.procs')),
        oomScoreAdj: clampOomScoreAdj(INFRA_OOM_SCORE_ADJ),
      });
      record.infraPid = started.pid;
      record.infraStartTime = started.startTime;
      record.infraParentPid = started.parentPid;
      record.namespaces.pid = `/proc/${started.pid}/ns/pid`;
      await save();
    })();
    const network = (async () => {
      if (plan.hostNetwork) return;
      const pinned = await pinning;
      const md = config.metadata!;
      const capabilities: CniCapabilityArgs = {
        portMappings: plan.portMappings,
        ...(config.dns_config && (config.dns_config.servers.length || config.dns_config.searches.length || config.dns_config.options.length)
          ? { dns: { servers: config.dns_config.servers, searches: config.dns_config.searches, options: config.dns_config.options } }
          : {}),
        ...(this.podCidr ? { ipRanges: [[{ subnet: this.podCidr }]] } : {}),
        ...(Object.keys(plan.bandwidth).length ? { bandwidth: plan.bandwidth } : {}),
      };
      const cni = this.cni();
      let attachment;
      try {
        attachment = await cni.prepare({ namespace: md.namespace, name: md.name, uid: md.uid, sandboxId: record.id }, capabilities);
      } catch (err) {
        throw failedPrecondition((err as Error).message);
      }
      // Saved (and synced) before ADD: a plugin failing, the daemon dying or a power cut midway still gets a DEL.
      record.network = attachment;
      record.networkSetUp = true;
      await save(true);
      try {
        attachment.result = await cni.add(attachment, pinned.network!);
      } catch (err) {
        if (err instanceof CniError && err.missing)
          throw failedPrecondition(`${err.message}: install it (Debian: apt-get install containernetworking-plugins) or add its directory to [cni] bin_dirs`);
        throw err;
      }
      record.ips = resultIps(attachment.result);
      await save();
    })();
    // Every step ends (or fails) before the first failure is thrown: the undo then sees all they made.
    const results = await Promise.allSettled([logDir, cgroup, pinning, infra, network]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    await writePodFiles(record.files, plan.hostname, plan.hostNetwork ? undefined : buildHosts(plan.hostname, record.ips), plan.resolvConf);
  }

  /** Releases what a running pod holds: infra process, network, /dev/shm, namespaces. */
  private async teardown(record: SandboxRecord): Promise<void> {
    const errors: string[] = [];
    let keepNetns = false;
    await killInfra(record.infraPid, record.infraStartTime, record.infraParentPid).catch((err) => errors.push(err.message));
    // The infra cgroup holds only what tscri started there: also an infra process
    // whose pid a crash kept from being recorded.
    if (record.infraCgroup) await killCgroupProcesses(record.infraCgroup).catch((err) => errors.push(err.message));
    if (record.networkSetUp && record.network) {
      const netns = record.namespaces.network && (await isNamespaceFile(record.namespaces.network)) ? record.namespaces.network : '';
      try {
        await this.cni().del(record.network, netns);
        // Without the namespace some plugins cannot find what to remove; the rules they tag are removed here.
        if (!netns) await removeTaggedRules(record.id);
        record.networkSetUp = false;
      } catch (err) {
        if (err instanceof CniDelError && err.onlyMissing && record.creating) {
          // A failed RunPodSandbox: a plugin missing now was missing at ADD too, and did nothing to undo.
          this.log.debug({ id: record.id, missing: err.missing }, 'CNI plugins missing at ADD are skipped at DEL');
          record.networkSetUp = false;
        } else if (err instanceof CniDelError && err.onlyMissing) {
          // The plugins are not installed: the DEL waits for them, so the pod can still be stopped and removed.
          await this.deferNetworkCleanup(record, netns, err.missing);
          keepNetns = Boolean(netns);
          record.networkSetUp = false;
        } else {
          errors.push((err as Error).message);
        }
      }
    }
    if (record.files.shm) await unmount(record.files.shm).catch((err) => errors.push(err.message));
    // The namespaces go with the network: a stopped pod never runs again, and an
    // empty network namespace would only hold kernel memory. When DEL failed the
    // network namespace stays so that a retry can still find the pod's interface.
    const keepNet = record.networkSetUp || keepNetns || this.pendingNetworks.get(record.id) !== undefined;
    await unpinPodNamespaces(this.config.state, record.id, record.namespaces, keepNet).catch((err) => errors.push(err.message));
    if (errors.length) throw new Error(`tearing down pod sandbox ${record.id}: ${errors.join('; ')}`);
  }

  private async deferNetworkCleanup(record: SandboxRecord, netns: string, missing: string[]): Promise<void> {
    const label = podLabel(record);
    await this.pendingNetworks.put({ ...label, attachment: record.network!, netns, missing, since: Date.now() });
    this.log.warn(
      { ...label, missing, binDirs: this.config.cni.bin_dirs },
      `the CNI plugins ${missing.join(', ')} are not installed: the pod's network is removed once they are (its network namespace stays pinned until then)`,
    );
  }

  /**
   * Deletes the pod's files and the cgroups tscri made for it. The pod cgroup
   * goes with everything under it only when tscri named it (unique to this
   * pod); a cgroup_parent tscri had to create goes only once nothing uses it
   * (another attempt of the pod may run in it); kubelet's stays.
   */
  private async removeFiles(record: SandboxRecord): Promise<void> {
    if (record.files.shm) await unmount(record.files.shm);
    await rm(record.dir, { recursive: true, force: true });
    if (record.infraCgroup) await removeCgroup(record.infraCgroup);
    const fsPath = cgroupFsPath(record.cgroupParent, this.config.cgroup_driver);
    if (!record.config.linux?.cgroup_parent) await removeCgroup(fsPath);
    else if (record.cgroupCreated) await removeCgroupIfUnused(fsPath);
  }

  private podExclusive<R>(id: string, fn: () => Promise<R>): Promise<R> {
    return this.containers.exclusive ? this.containers.exclusive(id, fn) : fn();
  }

  async stop(id: string): Promise<void> {
    const found = this.store.find(id);
    if (!found) return;
    await this.locks.with(found.id, async () => {
      const record = this.store.get(found.id);
      if (!record) return;
      // Containers being created or started in the pod finish first; later ones see it NOTREADY.
      await this.podExclusive(record.id, async () => {
        await this.containers.stopAll(record.id, STOP_TIMEOUT_SECONDS);
        await this.nri.stopPodSandbox(record);
        try {
          await this.teardown(record);
        } finally {
          record.state = 'SANDBOX_NOTREADY';
          record.stoppedAt ??= nowNs();
          await this.store.put(record);
        }
      });
      this.log.info(podLabel(record), 'pod sandbox stopped');
    });
  }

  async remove(id: string): Promise<void> {
    const found = this.store.find(id);
    if (!found) return;
    await this.locks.with(found.id, async () => {
      const record = this.store.get(found.id);
      if (!record) return;
      await this.podExclusive(record.id, async () => {
        await this.containers.stopAll(record.id, 0);
        await this.nri.stopPodSandbox(record);
        await this.containers.removeAll(record.id);
        await this.teardown(record);
        record.state = 'SANDBOX_NOTREADY';
        await this.removeFiles(record);
        await this.store.delete(record.id);
      });
      if (record.name && this.names.get(record.name) === record.id) this.names.delete(record.name);
      this.log.info(podLabel(record), 'pod sandbox removed');
      await this.nri.removePodSandbox(record);
    });
  }

  /**
   * The state as it really is: a READY record whose infra process or netns
   * is gone is NOTREADY. Checked without the thread pool (a read of /proc and
   * a statfs of the namespace file, microseconds each), so listings kubelet
   * makes every second never queue behind disk writes.
   */
  liveState(record: SandboxRecord): SandboxState {
    if (record.state !== 'SANDBOX_READY' || record.creating) return 'SANDBOX_NOTREADY';
    if (record.infraPid && !infraAliveSync(record.infraPid, record.infraStartTime)) return 'SANDBOX_NOTREADY';
    if (record.namespaces.network && !isNamespaceFileSync(record.namespaces.network)) return 'SANDBOX_NOTREADY';
    return 'SANDBOX_READY';
  }

  private require(id: string): SandboxRecord {
    const record = id ? this.store.find(id) : undefined;
    if (!record || record.creating) throw notFound(`pod sandbox ${quote(id)} not found`);
    return record;
  }

  async status(id: string, verbose: boolean): Promise<SandboxStatusResult> {
    // Taken before anything is read: kubelet's evented PLEG caches what follows
    // as the pod's state at this time (nanoseconds) and then skips ListContainers.
    const timestamp = nowNs();
    const record = this.require(id);
    const state = this.liveState(record);
    const c = record.config;
    const ns = c.linux?.security_context?.namespace_options;
    const [ip, ...additional] = record.ips;
    const status: PodSandboxStatus = {
      id: record.id,
      metadata: c.metadata,
      state,
      created_at: record.createdAt,
      network: { ip: ip ?? '', additional_ips: additional.map((a) => ({ ip: a })) },
      linux: {
        namespaces: {
          options: {
            network: ns?.network ?? 'POD',
            pid: ns?.pid ?? 'POD',
            ipc: ns?.ipc ?? 'POD',
            target_id: ns?.target_id ?? '',
            userns_options: ns?.userns_options ?? null,
          },
        },
      },
      labels: c.labels ?? {},
      annotations: c.annotations ?? {},
      runtime_handler: record.runtimeHandler,
    };
    const info: Record<string, string> = {};
    if (verbose) {
      // crictl inspectp and nsenter-based tools read info.pid: the infra
      // process when the pod has one, else a running container of the pod
      // (which is in the pod's network, IPC and UTS namespaces), else 0 (the
      // namespace files in `namespaces` are then the way in: nsenter --net=FILE).
      const pid = record.infraPid ?? this.containers.runningPid?.(record.id) ?? 0;
      info.info = JSON.stringify({
        pid,
        pidOf: record.infraPid && pid === record.infraPid ? 'infra' : pid ? 'container' : 'none',
        processStatus: state === 'SANDBOX_READY' ? 'running' : 'stopped',
        netNamespaceClosed: !(record.namespaces.network && isNamespaceFileSync(record.namespaces.network)),
        runtimeHandler: record.runtimeHandler,
        cgroupParent: record.cgroupParent,
        namespaces: record.namespaces,
        files: record.files,
        ips: record.ips,
        cniResult: record.network?.result ?? null,
        cniConfig: record.network?.confFile ?? null,
        config: c,
      });
    }
    try {
      return { status, info, containers_statuses: await this.podContainerStatuses(record), timestamp };
    } catch (err) {
      // Without every container's status the timestamp would tell kubelet a partial list is whole.
      this.log.warn({ id: record.id, err: (err as Error).message }, 'cannot read the statuses of the pod containers');
      return { status, info, containers_statuses: [], timestamp: 0 };
    }
  }

  /**
   * The statuses of every container of the pod, as kubelet would list them by
   * the pod's uid: this sandbox's and those of the pod's other attempts.
   */
  private async podContainerStatuses(record: SandboxRecord): Promise<ContainerStatus[]> {
    const uid = record.config.metadata?.uid;
    const sandboxes = this.store.list().filter((r) => r.id === record.id || (uid && !r.creating && r.config.metadata?.uid === uid));
    const statuses: ContainerStatus[] = [];
    for (const sandbox of sandboxes) statuses.push(...(await this.containers.statuses(sandbox.id)));
    return statuses;
  }

  async list(filter: PodSandboxFilter__Output | null | undefined): Promise<PodSandbox[]> {
    const items: Listed['item'][] = [];
    const now = performance.now();
    for (const record of this.store.list()) {
      if (record.creating) continue;
      if (filter?.id && !record.id.startsWith(filter.id)) continue;
      const item = this.listItem(record, now);
      if (matchesFilter(item, filter)) items.push(item);
    }
    return items.sort((a, b) => a.created_at - b.created_at);
  }

  /**
   * The record as ListPodSandbox answers it: one object per record and
   * state, made again when the state changes (the gRPC layer may keep its
   * encoding by identity, so it is never modified).
   */
  private listItem(record: SandboxRecord, now: number): Listed['item'] {
    const cached = this.listed.get(record);
    if (record.state === 'SANDBOX_READY' && cached?.item.state === 'SANDBOX_READY') {
      if (now - cached.checkedAt >= LIST_LIVENESS_MS && !cached.checking) {
        cached.checking = true;
        void this.checkListed(record, cached);
      }
      return cached.item;
    }
    const state = record.state === 'SANDBOX_READY' ? this.liveState(record) : 'SANDBOX_NOTREADY';
    if (cached?.item.state === state) {
      cached.checkedAt = now;
      return cached.item;
    }
    return this.setListed(record, state, now).item;
  }

  private setListed(record: SandboxRecord, state: SandboxState, now: number): Listed {
    const item = Object.freeze({
      id: record.id,
      metadata: record.config.metadata,
      state,
      created_at: record.createdAt,
      labels: record.config.labels ?? {},
      annotations: record.config.annotations ?? {},
      runtime_handler: record.runtimeHandler,
    });
    const listed = { item, checkedAt: now };
    this.listed.set(record, listed);
    return listed;
  }

  /** The background look of listItem: the infra process and network namespace, through the thread pool. */
  private async checkListed(record: SandboxRecord, listed: Listed): Promise<void> {
    let alive = true;
    try {
      if (record.infraPid && !(await infraAlive(record.infraPid, record.infraStartTime))) alive = false;
      else if (record.namespaces.network && !(await isNamespaceFile(record.namespaces.network))) alive = false;
    } finally {
      listed.checking = false;
      listed.checkedAt = performance.now();
    }
    if (!alive && this.listed.get(record) === listed) this.setListed(record, 'SANDBOX_NOTREADY', performance.now());
  }

  async updateResources(id: string, overhead: LinuxContainerResources__Output | null, resources: LinuxContainerResources__Output | null): Promise<void> {
    const found = this.require(id);
    checkPodResources(resources, overhead);
    await this.locks.with(found.id, async () => {
      const record = this.require(found.id);
      await this.nri.updatePodSandbox(record, overhead, resources);
      if (ownsPodCgroup(record)) await writeResources(cgroupFsPath(record.cgroupParent, this.config.cgroup_driver), podResources(resources, overhead));
      record.resources = { overhead, resources };
      await this.store.put(record);
    });
    await this.nri.postUpdatePodSandbox(found);
  }

  /** Puts a process into the pod's cgroup (used for processes the pod owns outside containers). */
  async joinCgroup(id: string, pid: number): Promise<void> {
    const record = this.require(id);
    await addProcess(cgroupFsPath(record.cgroupParent, this.config.cgroup_driver), pid);
  }
}
