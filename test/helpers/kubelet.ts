// CRI requests shaped as kubelet's kuberuntime builds them (kuberuntime_sandbox.go,
// kuberuntime_container.go, kuberuntime_container_linux.go, labels.go): pod and
// container labels and annotations, the pod cgroup under kubepods/<qos>/pod<uid>
// (cgroupfs driver), resources from requests and limits (shares, quota, memory,
// oom_score_adj, a hugepage limit for every page size of the node, `unified`
// on cgroup v2 with memory.oom.group and kubelet's swap settings), the /etc/hosts,
// termination-log and emptyDir mounts, and log paths <name>/<restartCount>.log.
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export type Qos = 'guaranteed' | 'burstable' | 'besteffort';
export type SwapBehavior = 'NoSwap' | 'LimitedSwap';

/** What kubelet knows of the node (cadvisor's MachineInfo). */
export interface Machine {
  memoryCapacity: number;
  swapCapacity: number;
  cgroupV2: boolean;
  /** The huge page sizes of the node as runc names them. */
  hugePageSizes: string[];
}

export function machine(): Machine {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? 0) * 1024;
  let sizes: string[] = [];
  try {
    sizes = readdirSync('/sys/kernel/mm/hugepages').flatMap((n) => {
      const m = /^hugepages-(\d+)kB$/.exec(n);
      if (!m) return [];
      const k = Number(m[1]);
      return [k >= 1 << 20 ? `${k >> 20}GB` : k >= 1024 ? `${k >> 10}MB` : `${k}KB`];
    });
  } catch {}
  let cgroupV2 = false;
  try {
    readFileSync('/sys/fs/cgroup/cgroup.controllers');
    cgroupV2 = true;
  } catch {}
  return { memoryCapacity: kb('MemTotal'), swapCapacity: kb('SwapTotal'), cgroupV2, hugePageSizes: sizes };
}

export interface KubePod {
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  qos: Qos;
  /** A test-owned root standing in for the cgroup root kubelet uses. */
  cgroupRoot: string;
  /** Stands in for /var/log/pods. */
  logRoot: string;
  /** Stands in for /var/lib/kubelet/pods/<uid>. */
  podDir: string;
  shareProcessNamespace?: boolean;
  /** hostNetwork: true (no DNS config or hostname of its own, network NODE). */
  hostNetwork?: boolean;
  labels?: Record<string, string>;
  /** Sum of the containers' requests and limits, for the sandbox resources. */
  cpuRequestMilli?: number;
  cpuLimitMilli?: number;
  memoryLimit?: number;
}

export interface KubeContainer {
  name: string;
  /** The image id, as kubelet passes it after EnsureImageExists. */
  imageId: string;
  /** The image as the pod spec names it. */
  image: string;
  command: string[];
  args?: string[];
  env?: Record<string, string>;
  restartCount?: number;
  cpuRequestMilli?: number;
  cpuLimitMilli?: number;
  memoryRequest?: number;
  memoryLimit?: number;
  /** Hugepage limits by page size ("2MB"), in bytes. */
  hugepages?: Record<string, number>;
  /** Extra emptyDir volumes: name to container path. */
  emptyDirs?: Record<string, string>;
}

/** kubelet's pod cgroup for the cgroupfs driver (guaranteed pods sit right under kubepods). */
export function podCgroup(pod: Pick<KubePod, 'cgroupRoot' | 'qos' | 'uid'>): string {
  const qos = pod.qos === 'guaranteed' ? '' : `/${pod.qos}`;
  return `${pod.cgroupRoot}/kubepods${qos}/pod${pod.uid}`;
}

export function podLogDirectory(pod: KubePod): string {
  return join(pod.logRoot, `${pod.namespace}_${pod.name}_${pod.uid}`);
}

// cm.MilliCPUToShares and milliCPUToQuota.
const MIN_SHARES = 2;
export function milliCpuToShares(milli: number): number {
  if (milli === 0) return MIN_SHARES;
  return Math.max(MIN_SHARES, Math.floor((milli * 1024) / 1000));
}
export function milliCpuToQuota(milli: number, period: number): number {
  if (milli === 0) return 0;
  return Math.max(1000, Math.floor((milli * period) / 1000));
}

/** calculateLinuxResources: shares, quota over a 100 ms period, memory limit, memory.oom.group on v2. */
function linuxResources(
  cpuRequestMilli: number | undefined,
  cpuLimitMilli: number | undefined,
  memoryLimit: number | undefined,
  m: Machine,
): Record<string, any> {
  const shares = cpuRequestMilli === undefined && cpuLimitMilli !== undefined ? milliCpuToShares(cpuLimitMilli) : milliCpuToShares(cpuRequestMilli ?? 0);
  return {
    cpu_period: 100000,
    cpu_quota: milliCpuToQuota(cpuLimitMilli ?? 0, 100000),
    cpu_shares: shares,
    memory_limit_in_bytes: memoryLimit ?? 0,
    ...(m.cgroupV2 ? { unified: { 'memory.oom.group': '1' } } : {}),
  };
}

/** qos.GetContainerOOMScoreAdjust. */
export function oomScoreAdj(qos: Qos, memoryRequest: number, m: Machine): number {
  if (qos === 'guaranteed') return -997;
  if (qos === 'besteffort') return 1000;
  const adj = 1000 - Math.floor((1000 * memoryRequest) / m.memoryCapacity);
  return Math.min(999, Math.max(2, adj));
}

/** calcSwapForBurstablePods: the container's share of the node's swap, by its memory request. */
export function limitedSwap(memoryRequest: number, m: Machine): number {
  return Math.trunc((memoryRequest / m.memoryCapacity) * m.swapCapacity);
}

/** namespacesForPod: the pod's own network and IPC unless hostNetwork; pid shared only with shareProcessNamespace. */
function namespaceOptions(pod: KubePod): Record<string, any> {
  return { network: pod.hostNetwork ? 'NODE' : 'POD', pid: pod.shareProcessNamespace ? 'POD' : 'CONTAINER', ipc: 'POD', userns_options: null };
}

export function podSandboxConfig(pod: KubePod, m: Machine): Record<string, any> {
  return {
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: pod.attempt },
    ...(pod.hostNetwork
      ? {}
      : {
          hostname: pod.name,
          dns_config: { servers: ['10.96.0.10'], searches: [`${pod.namespace}.svc.cluster.local`, 'svc.cluster.local', 'cluster.local'], options: ['ndots:5'] },
        }),
    log_directory: podLogDirectory(pod),
    port_mappings: [],
    labels: { ...pod.labels, 'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid },
    annotations: { 'kubernetes.io/config.seen': new Date().toISOString(), 'kubernetes.io/config.source': 'api' },
    linux: {
      cgroup_parent: podCgroup(pod),
      security_context: {
        namespace_options: namespaceOptions(pod),
        privileged: false,
        seccomp: { profile_type: 'RuntimeDefault' },
        supplemental_groups: [],
        readonly_rootfs: false,
      },
      sysctls: {},
      overhead: {},
      resources: linuxResources(pod.cpuRequestMilli, pod.cpuLimitMilli, pod.memoryLimit, m),
    },
  };
}

const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Where kubelet keeps a container's termination message file (one per restart). */
export function terminationLogPath(pod: KubePod, name: string, suffix: string): string {
  return join(pod.podDir, 'containers', name, suffix);
}

export interface BuiltContainer {
  config: Record<string, any>;
  /** Host files kubelet creates before CreateContainer: etc-hosts, the termination log, emptyDirs. */
  hostFiles: { etcHosts: string; terminationLog: string; emptyDirs: Record<string, string> };
}

export function containerConfig(pod: KubePod, c: KubeContainer, m: Machine, swap: SwapBehavior = 'NoSwap'): BuiltContainer {
  const restartCount = c.restartCount ?? 0;
  const resources = linuxResources(c.cpuRequestMilli, c.cpuLimitMilli, c.memoryLimit, m);
  resources.oom_score_adj = oomScoreAdj(pod.qos, c.memoryRequest ?? 0, m);
  resources.hugepage_limits = m.hugePageSizes.map((size) => ({ page_size: size, limit: c.hugepages?.[size] ?? 0 }));
  // configureContainerSwapResources: LimitedSwap only for Burstable containers whose memory request differs from the limit.
  const memoryRequest = c.memoryRequest ?? 0;
  const limited = swap === 'LimitedSwap' && m.cgroupV2 && pod.qos === 'burstable' && (memoryRequest || c.memoryLimit) && memoryRequest !== (c.memoryLimit ?? 0);
  if (m.cgroupV2) resources.unified = { ...resources.unified, 'memory.swap.max': String(limited ? limitedSwap(memoryRequest, m) : 0) };
  else resources.memory_swap_limit_in_bytes = resources.memory_limit_in_bytes;
  const terminationLog = terminationLogPath(pod, c.name, randomBytes(4).toString('hex'));
  const etcHosts = join(pod.podDir, 'etc-hosts');
  const emptyDirs = Object.fromEntries(Object.keys(c.emptyDirs ?? {}).map((v) => [v, join(pod.podDir, 'volumes', 'kubernetes.io~empty-dir', v)]));
  const mount = (container_path: string, host_path: string) => ({
    container_path,
    host_path,
    readonly: false,
    selinux_relabel: false,
    propagation: 'PROPAGATION_PRIVATE',
  });
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', KUBERNETES_PORT: 'tcp://10.96.0.1:443', ...c.env };
  const config = {
    metadata: { name: c.name, attempt: restartCount },
    image: { image: c.imageId, user_specified_image: c.image, annotations: {}, runtime_handler: '' },
    command: c.command,
    args: c.args ?? [],
    working_dir: '',
    // tscri's proto reads the value as bytes (the wire format of a string).
    envs: Object.entries(env).map(([key, value]) => ({ key, value: Buffer.from(value) })),
    mounts: [
      ...Object.entries(c.emptyDirs ?? {}).map(([v, path]) => mount(path, emptyDirs[v]!)),
      mount('/etc/hosts', etcHosts),
      mount('/dev/termination-log', terminationLog),
    ],
    devices: [],
    labels: {
      'io.kubernetes.container.name': c.name,
      'io.kubernetes.pod.name': pod.name,
      'io.kubernetes.pod.namespace': pod.namespace,
      'io.kubernetes.pod.uid': pod.uid,
    },
    annotations: {
      'io.kubernetes.container.hash': randomBytes(4).toString('hex'),
      'io.kubernetes.container.restartCount': String(restartCount),
      'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
      'io.kubernetes.container.terminationMessagePolicy': 'File',
      'io.kubernetes.pod.terminationGracePeriod': '30',
    },
    log_path: join(c.name, `${restartCount}.log`),
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: {
      resources,
      security_context: {
        capabilities: { add_capabilities: [], drop_capabilities: [] },
        privileged: false,
        namespace_options: namespaceOptions(pod),
        readonly_rootfs: false,
        no_new_privs: false,
        masked_paths: MASKED_PATHS,
        readonly_paths: READONLY_PATHS,
        seccomp: { profile_type: 'RuntimeDefault' },
      },
    },
  };
  return { config, hostFiles: { etcHosts, terminationLog, emptyDirs } };
}
