// ExecSync: runs a command in a running container and returns its output and exit code;
// a command outliving `timeout` seconds is killed and the call answers DEADLINE_EXCEEDED.
import type { ExecSyncRequest__Output } from '../../generated/runtime/v1/ExecSyncRequest.ts';
import type { ExecSyncResponse } from '../../generated/runtime/v1/ExecSyncResponse.ts';
import { unary } from '../handler.ts';

export default unary<ExecSyncRequest__Output, ExecSyncResponse>(async (ctx, req, call) => {
  const result = await ctx.containers.execSync(req.container_id, req.cmd, Math.max(0, req.timeout), call.signal);
  return { stdout: result.stdout, stderr: result.stderr, exit_code: result.exitCode };
});
