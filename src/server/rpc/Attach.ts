// Attach: prepares a streaming attach to a running container's stdio and returns its URL.
import type { AttachRequest__Output } from '../../generated/runtime/v1/AttachRequest.ts';
import type { AttachResponse } from '../../generated/runtime/v1/AttachResponse.ts';
import { unary } from '../handler.ts';
import { requireRunning, validateStreams } from '../stream-checks.ts';

export default unary<AttachRequest__Output, AttachResponse>(async (ctx, req) => {
  validateStreams(req);
  const container = requireRunning(ctx, req.container_id);
  return { url: ctx.streams.prepare({ kind: 'attach', containerId: container.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
});
