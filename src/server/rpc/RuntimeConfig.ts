// RuntimeConfig: tells kubelet which cgroup driver tscri uses.
import type { RuntimeConfigRequest__Output } from '../../generated/runtime/v1/RuntimeConfigRequest.ts';
import type { RuntimeConfigResponse } from '../../generated/runtime/v1/RuntimeConfigResponse.ts';
import { unary } from '../handler.ts';

export default unary<RuntimeConfigRequest__Output, RuntimeConfigResponse>(async (ctx) => ({
  linux: { cgroup_driver: ctx.config.cgroup_driver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' },
}));
