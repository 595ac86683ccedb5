// RestorePod: a new pod from the config kubelet sends, and in it one created
// container per checkpointed container, each made from its archive as
// CreateContainer does for an archive path (StartContainer then runs
// `runc restore`). Everything is checked before the pod is made: the
// checkpoint's manifest and archives, the pod settings the processes depend
// on, and that each container config describes the checkpointed process. A
// failure after the pod exists removes the pod with whatever was created in it.
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.ts';
import type { RestorePodRequest__Output } from '../generated/runtime/v1/RestorePodRequest.ts';
import type { RestorePodResponse } from '../generated/runtime/v1/RestorePodResponse.ts';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.ts';
import { deadlineExceeded, failedPrecondition, invalidArgument } from '../errors.ts';
import { ArchiveError, readArchiveMetadata } from '../checkpoint/archive.ts';
import { RestoreError, validConfigDump } from '../checkpoint/metadata.ts';
import {
  containerConfigMismatch,
  matchContainerConfigs,
  PodCheckpointError,
  podConfigMismatch,
  readPodCheckpoint,
  unsupportedOptions,
} from '../checkpoint/pod.ts';
import type { ResolvedImage } from '../oci/request.ts';

export interface PodRestoreDeps {
  defaultHandler: string;
  resolveImage(ref: string): Promise<ResolvedImage | undefined>;
  runPod(config: PodSandboxConfig__Output, runtimeHandler: string): Promise<string>;
  removePod(id: string): Promise<void>;
  createContainer(podId: string, config: ContainerConfig__Output, sandboxConfig: PodSandboxConfig__Output): Promise<string>;
}

function asRequestError(err: unknown): unknown {
  return err instanceof PodCheckpointError || err instanceof ArchiveError || err instanceof RestoreError ? invalidArgument((err as Error).message) : err;
}

export async function restorePod(deps: PodRestoreDeps, req: RestorePodRequest__Output, signal?: AbortSignal): Promise<RestorePodResponse> {
  const unsupported = unsupportedOptions('RestorePod', req.options);
  if (unsupported) throw invalidArgument(unsupported);
  if (!req.config) throw invalidArgument("config is required: the restored pod's sandbox config");
  const { manifest, archives } = await readPodCheckpoint(req.checkpoint_path).catch((err) => {
    throw asRequestError(err);
  });
  const handler = req.runtime_handler || deps.defaultHandler;
  const checkpointHandler = manifest.runtimeHandler || deps.defaultHandler;
  if (handler !== checkpointHandler)
    throw failedPrecondition(
      `the checkpoint was made with runtime handler ${JSON.stringify(checkpointHandler)}; restore it with that handler, not ${JSON.stringify(handler)}`,
    );
  const podMismatch = podConfigMismatch(manifest.podConfig, req.config);
  if (podMismatch) throw failedPrecondition(`cannot restore the checkpoint of pod ${manifest.sandboxId}: ${podMismatch}`);
  let configs: Map<string, ContainerConfig__Output>;
  try {
    configs = matchContainerConfigs(manifest, req.container_configs ?? []);
  } catch (err) {
    throw asRequestError(err);
  }

  const plan: Array<{ name: string; config: ContainerConfig__Output }> = [];
  for (const c of manifest.containers) {
    const archive = archives.get(c.name)!;
    const config = configs.get(c.name)!;
    const dump = await readArchiveMetadata(archive)
      .then(({ config: raw }) => validConfigDump(raw))
      .catch((err) => {
        throw asRequestError(err);
      });
    const mismatch = containerConfigMismatch(dump.containerConfig, config);
    if (mismatch) throw failedPrecondition(`container_configs entry ${JSON.stringify(c.name)} does not describe the checkpointed container: ${mismatch}`);
    const requestedImage = config.image?.image ?? '';
    if (requestedImage) {
      const image = await deps.resolveImage(requestedImage);
      if (image && dump.rootfsImageRef && image.id !== dump.rootfsImageRef) {
        throw failedPrecondition(
          `container ${JSON.stringify(c.name)} was checkpointed from image ${dump.rootfsImageRef}, but its config names ${requestedImage} (${image.id})`,
        );
      }
    }
    plan.push({
      name: c.name,
      config: {
        ...config,
        image: {
          ...(config.image ?? { annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' }),
          image: archive,
        } as ContainerConfig__Output['image'],
      },
    });
  }

  const aborted = () =>
    signal?.aborted && deadlineExceeded(`restoring the pod from ${req.checkpoint_path} did not finish before the client's deadline; nothing was kept`);
  const early = aborted();
  if (early) throw early;
  const podId = await deps.runPod(req.config, req.runtime_handler);
  const restored: Array<{ name: string; container_id: string }> = [];
  try {
    for (const p of plan) {
      const late = aborted();
      if (late) throw late;
      restored.push({ name: p.name, container_id: await deps.createContainer(podId, p.config, req.config) });
    }
    const late = aborted();
    if (late) throw late;
  } catch (err) {
    await deps.removePod(podId);
    throw err;
  }
  return { pod_sandbox_id: podId, restored_containers: restored };
}
