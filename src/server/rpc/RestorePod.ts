// RestorePod: a new pod with one created container per container of a CheckpointPod checkpoint; StartContainer restores each.
import type { RestorePodRequest__Output } from '../../generated/runtime/v1/RestorePodRequest.ts';
import type { RestorePodResponse } from '../../generated/runtime/v1/RestorePodResponse.ts';
import { invalidArgument } from '../../errors.ts';
import { restorePod } from '../../container/pod-restore.ts';
import { unary } from '../handler.ts';

export default unary<RestorePodRequest__Output, RestorePodResponse>(async (ctx, req, call) => {
  if (!call.deadline) throw invalidArgument('RestorePod needs a deadline on the call');
  return restorePod(
    {
      defaultHandler: ctx.config.runtime.default_handler,
      resolveImage: (ref) => ctx.containers.resolveImage(ref),
      runPod: (config, handler) => ctx.sandboxes.run(config, handler),
      removePod: (id) => ctx.sandboxes.remove(id),
      createContainer: (podId, config, sandboxConfig) => ctx.containers.create(podId, config, sandboxConfig),
    },
    req,
    call.signal,
  );
});
