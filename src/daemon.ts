// The daemon: prepares directories, builds the services, serves the socket
// and shuts down gracefully on SIGTERM/SIGINT without touching containers.
import { access, constants, mkdir, readFile, rm, readdir } from 'node:fs/promises';
import { flushCompileCache } from 'node:module';
import { join } from 'node:path';
import { createLogger, type Logger } from './log.ts';
import { secureDirs } from './store/dir-modes.ts';
import { loadConfig, socketPath, type Config, type Flags } from './config/config.ts';
import { applyReload } from './config/reload.ts';
import { inheritedSocket, Notifier, takeNotifySocket, type InheritedSocket } from './systemd/systemd.ts';
import { prepareSocket, startServer } from './server/server.ts';
import type { Context } from './server/context.ts';
import { cniConfigStatus, findCniConfigFile } from './network/cni-config.ts';
import { CniRunner, loadNetworkList } from './network/cni.ts';
import { SandboxService } from './sandbox/service.ts';
import { serveMetrics } from './server/metrics.ts';
import { metrics } from './metrics.ts';
import { ContainerService } from './container/service.ts';
import { containerDeps } from './container/wiring.ts';
import { StatsService } from './container/stats.ts';
import { StreamServer } from './stream/server.ts';
import { containerStreams } from './container/exec.ts';
import { dialInNetns } from './stream/netns-dial.ts';
import { notFound, quote } from './errors.ts';
import { Trash } from './store/trash.ts';
import { SnapshotStore } from './snapshot/snapshots.ts';
import { prepareRootfs, removeRootfs, upperDir } from './snapshot/rootfs.ts';
import { ImageService } from './image/service.ts';
import { detectHostFacts } from './oci/host.ts';
import { makeSpec, removeImageVolumes } from './oci/prepare.ts';
import { resourcesToOci } from './oci/resources.ts';
import { applyRootfsDiff } from './checkpoint/rootfs-diff.ts';
import { RuntimeFeatures } from './oci/features.ts';
import { removeAnonymousVolumes } from './oci/volumes.ts';
import { Nri } from './nri/nri.ts';
import { NO_CONTAINER_NRI, NriBridge, type NriHooks } from './container/nri-bridge.ts';
import { NO_POD_NRI } from './sandbox/nri-hooks.ts';
import type { ContainerRecord } from './container/record.ts';

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  return pkg.version as string;
}

export async function runDaemon(config: Config, flags: Flags = {}): Promise<void> {
  const log = createLogger(config.log_level);
  // Under systemd: readiness and state changes go to NOTIFY_SOCKET, and the
  // CRI socket may be handed in (tscri.socket). Neither reaches child processes.
  const notifier = new Notifier(takeNotifySocket(), (message) => log.warn({ err: message }, 'cannot notify systemd'));
  // Directories this start creates; a start that is refused removes them again.
  const created: string[] = [];
  const made = (dir: string | undefined) => {
    if (dir) created.push(dir);
  };
  let started;
  try {
    const inherited = inheritedSocket();
    // Before touching any state: a second daemon must not start on a busy socket.
    if (!inherited) made(await prepareSocket(socketPath(config.listen)));
    made(await mkdir(config.root, { recursive: true, mode: 0o700 }));
    made(await mkdir(config.state, { recursive: true, mode: 0o711 }));
    for (const warning of await secureDirs(config.root, config.state)) log.warn(warning);
    notifier.status('loading images, pods and containers');
    started = await startServices(config, log, inherited);
  } catch (err) {
    await removeCreated(created, log);
    notifier.status(`failed to start: ${(err as Error).message ?? err}`);
    throw err;
  }
  const { ctx, server, metricsServer, streams, containers, nri } = started;
  const serving = () => `serving the CRI on ${server.socket}; ${ctx.sandboxes.records().length} pods, ${ctx.containers.records().length} containers`;
  notifier.ready(serving());
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      notifier.stopping('stopping: finishing calls in flight; containers keep running');
      log.info({ signal }, 'shutting down: no new calls, finishing in-flight calls; containers keep running');
      server.shutdown().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      notifier.reloading('reloading the configuration');
      const failure = reload(ctx, flags);
      // CNI plugins may have been installed, or bin_dirs changed: pending pod network cleanups run now.
      void ctx.sandboxes.retryNetworkCleanups();
      notifier.ready(failure ? `${serving()}; the last reload failed: ${failure}` : serving());
    });
  });
  process.removeAllListeners('SIGHUP');
  await metricsServer?.close();
  await streams.close();
  await nri.stop();
  // A `runc delete` still running would outlive the daemon; each is bounded by the runtime's timeout.
  await containers.cleanupsDone();
  containers.close();
  ctx.sandboxes.close();
  log.info('tscri stopped');
  log.flush();
}

/** Loads the state, builds the services and starts serving. */
async function startServices(config: Config, log: Logger, inherited: InheritedSocket | undefined) {
  // Removed directories are renamed into a trash on their filesystem and deleted after the call; what a crash left there goes now, in the background.
  const rootTrash = new Trash(join(config.root, 'trash'), log.child({ component: 'trash' }));
  const stateTrash = new Trash(join(config.state, 'trash'), log.child({ component: 'trash' }));
  await rootTrash.open();
  await stateTrash.open();
  const snapshots = new SnapshotStore(join(config.root, 'snapshots'), rootTrash);
  await snapshots.load();
  const images = new ImageService(config, log, snapshots);
  await images.load();
  const host = detectHostFacts(config);
  const volumesRoot = join(config.root, 'volumes');
  const runtimeFeatures = await RuntimeFeatures.probe(config.runtime.handlers, config.runtime.default_handler);
  log.info({ handlers: Object.fromEntries(Object.keys(config.runtime.handlers).map((h) => [h, runtimeFeatures.get(h)])) }, 'runtime handler features');
  if (host.hugetlb && !host.hugetlb.controller && host.hugetlb.pageSizes.length)
    log.warn('the hugetlb cgroup controller is not available to containers here; hugepage limits are not applied');
  const sandboxes = new SandboxService(config, log);
  await sandboxes.load();
  const version = await packageVersion();
  const nri = new Nri(config.nri, { name: 'tscri', version }, log.child({ component: 'nri' }));
  const bridge: NriBridge = new NriBridge(nri, {
    log,
    sandbox: (id) => sandboxes.get(id),
    sandboxes: () => sandboxes.records(),
    container: (id): ContainerRecord | undefined => containers.find(id),
    containers: () => containers.records(),
    updateResources: (id, resources) => containers.update(id, resources, false),
    stopContainer: (id) => containers.stop(id, 0),
    cdiSpecDirs: () => config.cdi.spec_dirs,
  });
  const nriHooks: NriHooks = config.nri.enable ? bridge : { ...NO_POD_NRI, ...NO_CONTAINER_NRI };
  sandboxes.setNri(nriHooks);
  const containers: ContainerService = new ContainerService(
    containerDeps({
      config,
      log,
      sandboxes,
      resolveImage: async (ref) => images.resolve(ref),
      prepareRootfs: async (id, chainIds, dir, rootfsDiff) => {
        await prepareRootfs(snapshots, id, chainIds, dir, undefined, rootfsDiff ? (upper) => applyRootfsDiff(rootfsDiff, upper) : undefined);
      },
      upperDir: (id) => upperDir(snapshots, id),
      removeRootfs: async (id, dir) => {
        const leased = snapshots.leasedBy(id);
        await removeImageVolumes(snapshots, id, dir);
        await removeRootfs(snapshots, id, dir);
        await removeAnonymousVolumes(volumesRoot, id, (path) => rootTrash.discard(path));
        await images.leasesEnded(leased);
      },
      deleteStateDir: (path) => stateTrash.discard(path),
      makeSpec: (req) =>
        makeSpec(req, {
          host,
          snapshots,
          resolveImage: (ref) => images.resolve(ref),
          runtimeFeatures,
          volumes: { root: volumesRoot, ignore: () => config.image.ignore_image_defined_volumes },
          cdiSpecDirs: () => config.cdi.spec_dirs,
        }),
      ociResources: (resources) => resourcesToOci(resources, host.cgroupVersion, host.hugetlb),
      nri: nriHooks,
    }),
  );
  await containers.load();
  // Leases of containers (and their image volumes, "<id>-volN") that no longer exist would keep their layers forever.
  const released = await snapshots.releaseUnless((owner) => containers.find(owner.replace(/-vol[0-9]+$/, '')) !== undefined);
  if (released.length > 0) await images.collectGarbage();
  // So would anonymous volumes of containers whose removal a crash interrupted.
  for (const id of await readdir(volumesRoot).catch(() => [] as string[])) {
    if (!containers.find(id) || containers.find(id)!.id !== id) await removeAnonymousVolumes(volumesRoot, id);
  }
  sandboxes.setContainers(containers);
  sandboxes.setRuntimeFeatures(runtimeFeatures);

  const streams = new StreamServer(
    {
      address: config.stream.address,
      port: config.stream.port,
      tlsCert: config.stream.tls_cert,
      tlsKey: config.stream.tls_key,
      tokenTimeoutSeconds: () => config.stream.token_timeout_seconds,
    },
    {
      ...containerStreams(containers, config.conmon.path),
      portForward: async (podId, port, signal) => {
        const pod = sandboxes.get(podId);
        if (!pod) throw notFound(`pod sandbox ${quote(podId)} not found`);
        return dialInNetns(pod.namespaces.network, port, signal);
      },
    },
    log,
  );
  const streamUrl = await streams.start();
  log.info({ url: streamUrl }, 'streaming server listening');

  const ctx: Context = {
    config,
    log,
    version,
    network: cniConfigStatus(() => config.cni.conf_dir),
    sandboxes,
    metrics,
    containers,
    streams,
    images,
    snapshots,
    runtimeFeatures,
    stats: new StatsService({
      containers: () => containers.records(),
      sandboxes: () => sandboxes.records(),
      driver: config.cgroup_driver,
      writableDir: (r) => upperDir(snapshots, r.id),
      mountpoint: snapshots.mountpoint(),
    }),
  };

  // The socket comes last: a start refused before it leaves no socket behind.
  metrics.collectProcessMetrics();
  metrics.setStateSource({
    async pods() {
      const counts: Record<string, number> = {};
      for (const record of sandboxes.records()) {
        const state = (await sandboxes.liveState(record)) === 'SANDBOX_READY' ? 'ready' : 'notready';
        counts[state] = (counts[state] ?? 0) + 1;
      }
      return counts;
    },
    containers() {
      const counts: Record<string, number> = {};
      for (const record of containers.records()) {
        const state = record.state.replace('CONTAINER_', '').toLowerCase();
        counts[state] = (counts[state] ?? 0) + 1;
      }
      return counts;
    },
  });
  const metricsServer = config.metrics.address
    ? await serveMetrics(ctx.metrics, config.metrics.address, (err) => log.error({ err: String(err) }, 'cannot collect the metrics'))
    : undefined;
  // Pre-installed plugins start, and plugins may connect, once the state is loaded.
  await nri.start(bridge);
  const server = await startServer(ctx, inherited ? inherited.path || `fd ${inherited.fd}` : socketPath(config.listen), inherited?.fd).catch(async (err) => {
    await nri.stop();
    throw err;
  });
  if (inherited && inherited.path !== socketPath(config.listen)) {
    log.warn({ socket: inherited.path, listen: config.listen }, 'serving on the socket systemd handed in, not on the configured listen address');
  }
  if (metricsServer) log.info({ address: config.metrics.address, port: metricsServer.port }, 'serving Prometheus metrics at /metrics');
  await warnMissingBinaries(config, log);
  log.info({ socket: server.socket, activated: Boolean(inherited), root: config.root, state: config.state, version: ctx.version }, 'tscri is serving');
  // What Node stripped and compiled to start (when bin/tscri enabled its compile cache) is kept now, not at exit:
  // the next start needs no TypeScript stripper even after a crash.
  flushCompileCache();
  return { ctx, server, metricsServer, streams, containers, nri };
}

/**
 * Says at start what is missing on the node for pods and containers to run:
 * the OCI runtimes, conmon, the infra process, the CNI network and its
 * plugins. tscri serves anyway (Status reports it too); the calls that need a
 * missing binary fail with FAILED_PRECONDITION naming it.
 */
async function warnMissingBinaries(config: Config, log: Logger): Promise<void> {
  const executable = (path: string) =>
    access(path, constants.X_OK).then(
      () => true,
      () => false,
    );
  for (const [name, handler] of Object.entries(config.runtime.handlers)) {
    if (!(await executable(handler.path))) {
      const what = name === config.runtime.default_handler ? 'the default OCI runtime' : 'an OCI runtime';
      log.warn(
        { handler: name, path: handler.path },
        `${what} is not installed: containers of runtime handler ${name} cannot run (set [runtime.handlers.${name}] path)`,
      );
    }
  }
  if (!(await executable(config.conmon.path)))
    log.warn({ path: config.conmon.path }, 'conmon is not installed: no container can be created (Debian: apt-get install conmon, or set [conmon] path)');
  if (!(await executable(config.pod.infra_path)))
    log.warn(
      { path: config.pod.infra_path },
      'the pod infra process is not installed: pods sharing one pid namespace cannot run (Debian: apt-get install catatonit, or set [pod] infra_path)',
    );
  const confFile = await findCniConfigFile(config.cni.conf_dir);
  if (!confFile) {
    log.warn({ confDir: config.cni.conf_dir }, 'no CNI network configuration: only pods on the host network can run until one is installed');
    return;
  }
  try {
    const list = await loadNetworkList(confFile);
    const missing = await new CniRunner({
      confDir: config.cni.conf_dir,
      binDirs: config.cni.bin_dirs,
      builtinLoopback: config.cni.builtin_loopback,
    }).missingPlugins(list);
    if (missing.length)
      log.warn(
        { confFile, missing, binDirs: config.cni.bin_dirs },
        `the CNI plugins ${missing.join(', ')} of network ${list.name} are not installed: pods cannot get a network (Debian: apt-get install containernetworking-plugins, or set [cni] bin_dirs)`,
      );
  } catch (err) {
    log.warn({ confFile, err: (err as Error).message }, 'the CNI network configuration cannot be used');
  }
}

/**
 * Removes the directories a refused start created (nothing in them predates
 * this start), unless something is mounted below them.
 */
async function removeCreated(dirs: string[], log: Logger): Promise<void> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const mountPoints = mounts
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => Boolean(m));
  for (const dir of dirs.reverse()) {
    if (mountPoints.some((m) => m === dir || m.startsWith(dir + '/'))) {
      log.warn({ dir }, 'not removing a directory this start created: something is mounted below it');
      continue;
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** SIGHUP: re-reads the config file and takes over what can change safely; returns why it failed, if it did. */
function reload(ctx: Context, flags: Flags): string | undefined {
  try {
    const { applied, needRestart } = applyReload(ctx.config, loadConfig(flags));
    ctx.log.level = ctx.config.log_level;
    ctx.log.info({ applied, needRestart }, 'configuration reloaded');
    if (needRestart.length) ctx.log.warn({ keys: needRestart }, 'these configuration changes take effect at the next start');
    return undefined;
  } catch (err) {
    ctx.log.error({ err: (err as Error).message }, 'configuration reload failed; keeping the running configuration');
    return (err as Error).message;
  }
}
