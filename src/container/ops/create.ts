// CreateContainer: the request is checked, the name reserved, the rootfs
// mounted, the OCI spec built (and shown to NRI plugins) and the record
// written; a failure at any step undoes the steps before it. conmon starts
// `runc create` once the call has answered (launch.ts). An image
// that is a checkpoint archive makes a container that StartContainer restores.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { VOLATILE, writeFileAtomic } from '../../store/store.ts';
import type { Spec } from '../../oci/types.ts';
import { alreadyExists, DomainError, failedPrecondition, internal, invalidArgument, notFound, quote } from '../../errors.ts';
import { checkContainerConfig } from '../../oci/request-checks.ts';
import { requestErrorOf } from '../runtime-errors.ts';
import type { ContainerConfig__Output } from '../../generated/runtime/v1/ContainerConfig.ts';
import type { ContainerUser } from '../../generated/runtime/v1/ContainerUser.ts';
import type { OciRuntime } from '../runtime.ts';
import { cgroupFsPath } from '../../cgroups/cgroups.ts';
import { bundleFiles } from '../conmon.ts';
import { launchSoon } from './launch.ts';
import { pickRepoDigest, reservationName, type ContainerRecord } from '../record.ts';
import { type ContainerState, containerName, nowNs } from '../state.ts';
import { CRIU_CONFIG_ANNOTATION, CRIU_RESTORE_CONFIG, criuRestoreConfig, isArchivePath, planRestore, unpackForRestore } from '../checkpoint.ts';

/** log_directory/log_path, refusing paths that leave the pod's log directory. */
export function criLogPath(logDirectory: string, logPath: string): string {
  if (!logDirectory || !logPath) return '';
  if (isAbsolute(logPath)) throw invalidArgument(`log_path ${quote(logPath)} must be relative to the pod's log_directory`);
  const joined = normalize(join(logDirectory, logPath));
  if (!joined.startsWith(normalize(logDirectory) + '/')) throw invalidArgument(`log_path ${quote(logPath)} leaves the pod's log_directory`);
  return joined;
}

function userOf(spec: Spec): ContainerUser | null {
  const u = spec.process?.user;
  if (!u) return null;
  return { linux: { uid: u.uid ?? 0, gid: u.gid ?? 0, supplemental_groups: u.additionalGids ?? [u.gid ?? 0] } };
}

/** FAILED_PRECONDITION naming a binary tscri needs that is not installed or not executable. */
export async function requireExecutable(path: string, what: string, key: string, debianPackage: string): Promise<void> {
  if (
    await access(path, fsConstants.X_OK).then(
      () => true,
      () => false,
    )
  )
    return;
  throw failedPrecondition(
    `${what} ${path} is not installed or not executable: install it (Debian: apt-get install ${debianPackage}) or set ${key} in the config`,
  );
}

/**
 * CreateContainer. Creates in one pod run side by side, but never alongside
 * its StopPodSandbox or RemovePodSandbox: those wait for creates in flight
 * (and then stop and remove what they made), and creates after them find
 * the pod not ready or gone.
 */
export async function createContainer(s: ContainerState, sandboxId: string, request: ContainerConfig__Output | null, sandboxConfig: unknown): Promise<string> {
  const pod = sandboxId ? s.deps.sandbox(sandboxId)?.id : undefined;
  if (!pod) return createInPod(s, sandboxId, request, sandboxConfig);
  return s.pods.shared(pod, () => createInPod(s, sandboxId, request, sandboxConfig));
}

async function createInPod(s: ContainerState, sandboxId: string, request: ContainerConfig__Output | null, sandboxConfig: unknown): Promise<string> {
  if (!request) throw invalidArgument('config is required');
  checkContainerConfig(request);
  let config = request;
  if (!config.metadata?.name) throw invalidArgument('config.metadata.name is required');
  const metaName = config.metadata.name;
  if (metaName.length > 253 || /[\u0000-\u001f\u007f]/.test(metaName)) {
    throw invalidArgument(`config.metadata.name ${quote(metaName)} is invalid: at most 253 characters and no control characters`);
  }
  if (!sandboxId) throw invalidArgument('pod_sandbox_id is required');
  const sandbox = s.deps.sandbox(sandboxId);
  if (!sandbox) throw notFound(`pod sandbox ${quote(sandboxId)} not found`);
  if (sandbox.state !== 'SANDBOX_READY') throw failedPrecondition(`pod sandbox ${sandbox.id} is not ready; create containers in a running pod`);
  void sandboxConfig;
  // A binary that is not installed is named here, before anything is made, not as a broken sync pipe later.
  const handlerName = sandbox.runtimeHandler || s.deps.config.runtime.default_handler;
  await requireExecutable(s.deps.config.conmon.path, 'conmon', '[conmon] path', 'conmon');
  await requireExecutable(
    s.runtimeFor(sandbox.runtimeHandler).path,
    `the OCI runtime of handler ${quote(handlerName)}`,
    `[runtime.handlers.${handlerName}] path`,
    handlerName === 'crun' ? 'crun' : 'runc',
  );
  let ref = config.image?.image ?? '';
  if (!ref) throw invalidArgument('config.image.image is required');
  // An image that is the path of a checkpoint archive makes a container that StartContainer restores.
  const restore = (await isArchivePath(ref)) ? await planRestore(ref, config, (r) => s.deps.resolveImage(r)) : undefined;
  if (restore) {
    config = restore.config;
    ref = restore.imageRef;
    checkContainerConfig(config);
  }
  const image = restore?.image ?? (await s.deps.resolveImage(ref));
  if (!image) throw notFound(`image ${quote(ref)} is not present on s node; pull it first`);
  const logPath = criLogPath(sandbox.config.log_directory, config.log_path);
  const targetPidNamespace = targetPidNamespaceOf(s, config, sandbox.id);
  config = await withImageVolumeRefs(s, config);

  const name = reservationName(config, sandbox.config);
  const holder = s.names.get(name);
  if (holder) throw alreadyExists(`the container name ${quote(name)} is already reserved for container ${holder}; remove that container first`);
  const id = randomBytes(32).toString('hex');
  s.names.set(name, id);

  const bundle = join(s.stateDir, id);
  const rootfs = join(bundle, 'rootfs');
  const runtime = s.runtimeFor(sandbox.runtimeHandler);
  const record: ContainerRecord = {
    id,
    sandboxId: sandbox.id,
    name,
    config,
    state: 'CONTAINER_CREATED',
    createdAt: 0,
    startedAt: 0,
    finishedAt: 0,
    exitCode: 0,
    reason: '',
    message: '',
    pid: 0,
    imageRef: ref,
    imageId: image.id,
    imageRepoDigest: pickRepoDigest(image.repo_digests ?? [], [config.image?.user_specified_image ?? '', ref]),
    runtimeHandler: sandbox.runtimeHandler || s.deps.config.runtime.default_handler,
    bundle,
    rootfs,
    logPath,
    imageStopSignal: String(image.config.config?.StopSignal ?? ''),
    resources: (config.linux?.resources as ContainerRecord['resources']) ?? null,
    user: null,
    cgroupsPath: s.deps.cgroupsPath(sandbox, id),
    rootfsPrepared: false,
    chainIds: image.chainIds,
    ...(restore ? { restore: { archive: restore.archive, originalId: restore.dump.id ?? '', checkpointedAt: restore.dump.checkpointedTime ?? '' } } : {}),
  };
  return s.ops.with(id, async () => {
    try {
      // The bundle and the rootfs mount point are root's only: host users must not reach an image's setuid binaries.
      await mkdir(rootfs, { recursive: true, mode: 0o700 });
      const rootfsDiff = restore ? await unpackForRestore(restore.archive, bundle) : undefined;
      await s.deps.prepareRootfs(id, image.chainIds, rootfs, rootfsDiff);
      if (rootfsDiff) await rm(rootfsDiff, { force: true });
      record.rootfsPrepared = true;
      const spec = await s.deps.makeSpec({ id, config, sandbox, image, rootfs, cgroupsPath: record.cgroupsPath, targetPidNamespace });
      await s.nri.createContainer(record, spec);
      record.user = userOf(spec);
      if (restore) {
        // CRIU puts restored processes in the cgroup they were dumped from unless told otherwise; runc
        // tells it only on cgroup v1. A CRIU config file, named by runc's org.criu.config annotation,
        // maps the dumped cgroup onto s container's, so its limits apply and stopping it finds them.
        const conf = join(bundle, CRIU_RESTORE_CONFIG);
        await writeFileAtomic(conf, criuRestoreConfig(cgroupFsPath(record.cgroupsPath)), 0o600, VOLATILE);
        spec.annotations = { ...(spec.annotations ?? {}), [CRIU_CONFIG_ANNOTATION]: conf };
      }
      await writeFileAtomic(bundleFiles(bundle).config, JSON.stringify(spec), 0o600, VOLATILE);
      if (logPath) await mkdir(dirname(logPath), { recursive: true });
      record.createdAt = nowNs();
      await s.store.put(record);
      s.log.info({ id, name: containerName(record), podId: record.sandboxId, pid: record.pid, restoreFrom: restore?.archive }, 'container created');
      s.events.publish('CONTAINER_CREATED_EVENT', id, record.sandboxId);
      await s.nri.postCreateContainer(record);
      // conmon and `runc create` run after the answer (a restored container's process comes at StartContainer).
      launchSoon(s, record);
      return id;
    } catch (err) {
      await s.nri.createFailed(record);
      await discard(s, record, runtime);
      throw err instanceof DomainError
        ? err
        : (requestErrorOf((err as Error).message) ?? internal(`cannot create container ${name}: ${(err as Error).message}`));
    }
  });
}

/** Image volumes carry the id of the image they mount (ContainerStatus mounts' image_ref). */
async function withImageVolumeRefs(s: ContainerState, config: ContainerConfig__Output): Promise<ContainerConfig__Output> {
  if (!(config.mounts ?? []).some((m) => m.image?.image)) return config;
  const mounts = await Promise.all(
    (config.mounts ?? []).map(async (m) => {
      if (!m.image?.image) return m;
      const id = (await s.deps.resolveImage(m.image.image))?.id ?? '';
      return { ...m, image: { ...m.image, image_ref: id } };
    }),
  );
  return { ...config, mounts };
}

/** Undoes a failed create: runtime state, rootfs, bundle, name. */
async function discard(s: ContainerState, r: ContainerRecord, runtime: OciRuntime): Promise<void> {
  await runtime.delete(r.id).catch(() => undefined);
  if (r.rootfsPrepared) await s.deps.removeRootfs(r.id, r.rootfs).catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot remove rootfs'));
  await rm(r.bundle, { recursive: true, force: true }).catch(() => undefined);
  await s.watcher.remove(r.id).catch(() => undefined);
  if (s.names.get(r.name) === r.id) s.names.delete(r.name);
}

/**
 * The pid namespace a TARGET-mode container joins: that of the running
 * container named by target_id in the same pod (kubectl debug --target).
 */
function targetPidNamespaceOf(s: ContainerState, config: ContainerConfig__Output, sandboxId: string): string | undefined {
  const options = config.linux?.security_context?.namespace_options;
  if (options?.pid !== 'TARGET') return undefined;
  if (!options.target_id) throw invalidArgument('the TARGET pid namespace mode needs namespace_options.target_id');
  const target = s.find(options.target_id);
  if (!target) throw notFound(`target container ${quote(options.target_id)} not found`);
  if (target.sandboxId !== sandboxId) throw invalidArgument(`target container ${target.id} belongs to another pod sandbox`);
  if (target.state !== 'CONTAINER_RUNNING' || !target.pid)
    throw failedPrecondition(`target container ${target.id} is not running; its pid namespace can only be joined while it runs`);
  return `/proc/${target.pid}/ns/pid`;
}
