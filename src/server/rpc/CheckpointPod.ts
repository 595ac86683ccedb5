// CheckpointPod: the selected running containers of a pod, paused together and checkpointed into the caller's empty directory with the pod's config.
import type { CheckpointPodRequest__Output } from '../../generated/runtime/v1/CheckpointPodRequest.ts';
import type { CheckpointPodResponse } from '../../generated/runtime/v1/CheckpointPodResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { unsupportedOptions } from '../../checkpoint/pod.ts';
import { unary } from '../handler.ts';

export default unary<CheckpointPodRequest__Output, CheckpointPodResponse>(async (ctx, req, call) => {
  const unsupported = unsupportedOptions('CheckpointPod', req.options);
  if (unsupported) throw invalidArgument(unsupported);
  // The pod is frozen while it is dumped; the CRI has the caller bound that with a deadline.
  if (!call.deadline) throw invalidArgument('CheckpointPod needs a deadline on the call');
  await ctx.containers.checkpointPod(req.pod_sandbox_id, req.container_ids ?? [], req.output_path, call.signal);
  return {};
});
