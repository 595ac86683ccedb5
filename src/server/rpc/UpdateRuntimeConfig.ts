// UpdateRuntimeConfig: kubelet's pod CIDR, passed to CNI plugins that take ipRanges.
import type { UpdateRuntimeConfigRequest__Output } from '../../generated/runtime/v1/UpdateRuntimeConfigRequest.ts';
import type { UpdateRuntimeConfigResponse } from '../../generated/runtime/v1/UpdateRuntimeConfigResponse.ts';
import { unary } from '../handler.ts';

export default unary<UpdateRuntimeConfigRequest__Output, UpdateRuntimeConfigResponse>(async (ctx, req) => {
  const cidr = req.runtime_config?.network_config?.pod_cidr ?? '';
  if (cidr) ctx.sandboxes.setPodCidr(cidr);
  return {};
});
