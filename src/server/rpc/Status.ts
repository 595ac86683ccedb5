// Status: RuntimeReady and NetworkReady conditions, runtime handlers and features.
import type { StatusRequest__Output } from '../../generated/runtime/v1/StatusRequest.ts';
import type { StatusResponse } from '../../generated/runtime/v1/StatusResponse.ts';
import { accessSync, constants } from 'node:fs';
import { unary } from '../handler.ts';
import type { Context } from '../context.ts';

/**
 * RuntimeReady needs the default OCI runtime and conmon to be executable.
 * Checked with access(2) on the event loop: microseconds, and never queued
 * behind disk writes in the thread pool as kubelet's status polls would be.
 */
function runtimeCondition(ctx: Context) {
  const needed = [ctx.config.runtime.handlers[ctx.config.runtime.default_handler]!.path, ctx.config.conmon.path];
  for (const path of needed) {
    let ok = true;
    try {
      accessSync(path, constants.X_OK);
    } catch {
      ok = false;
    }
    if (!ok)
      return {
        type: 'RuntimeReady',
        status: false,
        reason: 'RuntimeBinaryMissing',
        message: `${path} is not an executable; install it or fix the path in the config`,
      };
  }
  return { type: 'RuntimeReady', status: true, reason: '', message: '' };
}

export default unary<StatusRequest__Output, StatusResponse>(async (ctx, req) => {
  const runtime = runtimeCondition(ctx);
  const network = await ctx.network.condition();
  const response: StatusResponse = {
    status: {
      conditions: [runtime, { type: 'NetworkReady', status: network.ready, reason: network.reason, message: network.message }],
    },
    // Every handler, and "" for the default one (what a pod without runtime_handler gets).
    runtime_handlers: ctx.runtimeFeatures.names().map((name) => ({
      name,
      features: {
        recursive_read_only_mounts: ctx.runtimeFeatures.get(name).recursiveReadOnlyMounts,
        user_namespaces: ctx.runtimeFeatures.userNamespaces(name),
      },
    })),
    features: { supplemental_groups_policy: true, user_namespaces_host_network: false, mount_options: true },
  };
  if (req.verbose) {
    response.info = {
      config: JSON.stringify({ ...ctx.config, registry: { config_path: ctx.config.registry.config_path } }),
    };
  }
  return response;
});
