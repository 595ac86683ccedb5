// PortForward: prepares port forwarding into a ready pod's network namespace and returns its URL.
import type { PortForwardRequest__Output } from '../../generated/runtime/v1/PortForwardRequest.ts';
import type { PortForwardResponse } from '../../generated/runtime/v1/PortForwardResponse.ts';
import { unary } from '../handler.ts';
import { failedPrecondition, invalidArgument, notFound, quote } from '../../errors.ts';
import { validPort } from '../../stream/netns-dial.ts';

export default unary<PortForwardRequest__Output, PortForwardResponse>(async (ctx, req) => {
  if (!req.pod_sandbox_id) throw invalidArgument('pod_sandbox_id is required');
  const bad = req.port.find((p) => !validPort(p));
  if (bad !== undefined) throw invalidArgument(`invalid port ${bad}: ports are 1-65535`);
  const pod = ctx.sandboxes.get(req.pod_sandbox_id);
  if (!pod || pod.creating) throw notFound(`pod sandbox ${quote(req.pod_sandbox_id)} not found`);
  if ((await ctx.sandboxes.liveState(pod)) !== 'SANDBOX_READY')
    throw failedPrecondition(`pod sandbox ${pod.id} is not ready; port-forward needs a running pod`);
  return { url: ctx.streams.prepare({ kind: 'portforward', podSandboxId: pod.id, ports: req.port }) };
});
