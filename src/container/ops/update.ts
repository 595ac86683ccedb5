// UpdateContainerResources: new limits (as NRI plugins adjust them) applied by
// `runc update` to a created or running container and kept in its record.
import { mergeResources } from '../../oci/resources.ts';
import { failedPrecondition, internal } from '../../errors.ts';
import { requestErrorOf } from '../runtime-errors.ts';
import type { LinuxContainerResources__Output } from '../../generated/runtime/v1/LinuxContainerResources.ts';
import type { ContainerRecord } from '../record.ts';
import { type ContainerState, stateWord } from '../state.ts';

/** UpdateContainerResources; `requested` is false for updates NRI plugins asked for, which plugins are not told of. */
export async function updateContainer(s: ContainerState, id: string, request: LinuxContainerResources__Output | null, requested = true): Promise<void> {
  const r = s.get(id);
  if (!request) return;
  await s.ops.with(r.id, async () => {
    if (r.state !== 'CONTAINER_CREATED' && r.state !== 'CONTAINER_RUNNING') {
      throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; only a created or running container can be updated`);
    }
    const resources = requested ? await s.nri.updateContainer(r, request) : request;
    try {
      await s.runtimeFor(r.runtimeHandler).update(r.id, s.deps.ociResources(resources));
    } catch (err) {
      throw requestErrorOf((err as Error).message) ?? internal(`cannot update the resources of container ${r.id}: ${(err as Error).message}`);
    }
    r.resources = mergeResources(r.resources, resources) as ContainerRecord['resources'];
    await s.persist(r);
  });
  if (requested) await s.nri.postUpdateContainer(r);
}
