// Checks shared by the Exec and Attach RPCs before a streaming URL is handed out.
import type { Context } from './context.ts';
import type { ContainerRecord } from '../container/record.ts';
import { failedPrecondition, invalidArgument, notFound, quote } from '../errors.ts';

export function validateStreams(req: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!req.stdin && !req.stdout && !req.stderr) throw invalidArgument('one of stdin, stdout or stderr must be set');
  if (req.tty && req.stderr) throw invalidArgument('tty and stderr cannot both be set: a terminal merges stderr into stdout');
}

export function requireRunning(ctx: Context, containerId: string): ContainerRecord {
  if (!containerId) throw invalidArgument('container_id is required');
  const container = ctx.containers.find(containerId);
  if (!container) throw notFound(`container ${quote(containerId)} not found`);
  if (container.state !== 'CONTAINER_RUNNING')
    throw failedPrecondition(`container ${container.id} is not running (${container.state}); exec and attach need a running container`);
  return container;
}
