// Runtime failures that are the request's doing, not a fault of tscri or the
// node, so that the client gets a status it can act on instead of INTERNAL.
import { failedPrecondition, type DomainError } from '../errors.ts';

/** The client's error behind a runtime failure message (runc create or update), if it is one. */
export function requestErrorOf(message: string): DomainError | undefined {
  const memory = /unable to set memory limit to (-?\d+) \(current usage: (\d+)/.exec(message);
  if (memory) {
    return failedPrecondition(
      `memory_limit_in_bytes ${memory[1]} is below what the container's processes already use (${memory[2]} bytes); give it a higher limit`,
    );
  }
  return undefined;
}
