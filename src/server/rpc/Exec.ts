// Exec: prepares a streaming exec session and returns its single-use URL.
import type { ExecRequest__Output } from '../../generated/runtime/v1/ExecRequest.ts';
import type { ExecResponse } from '../../generated/runtime/v1/ExecResponse.ts';
import { unary } from '../handler.ts';
import { invalidArgument } from '../../errors.ts';
import { requireRunning, validateStreams } from '../stream-checks.ts';

export default unary<ExecRequest__Output, ExecResponse>(async (ctx, req) => {
  if (!req.cmd.length) throw invalidArgument('cmd is required');
  validateStreams(req);
  const container = requireRunning(ctx, req.container_id);
  return {
    url: ctx.streams.prepare({ kind: 'exec', containerId: container.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }),
  };
});
