// The one mapping from the runtime's error kinds (src/errors.ts) to the gRPC status a
// CRI client receives.
import { status } from '@grpc/grpc-js';
import { DomainError, type ErrorKind } from '../errors.ts';

const CODES: Record<ErrorKind, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  FailedPrecondition: status.FAILED_PRECONDITION,
  Unavailable: status.UNAVAILABLE,
  DeadlineExceeded: status.DEADLINE_EXCEEDED,
  ResourceExhausted: status.RESOURCE_EXHAUSTED,
  Unauthenticated: status.UNAUTHENTICATED,
  DataLoss: status.DATA_LOSS,
  Unimplemented: status.UNIMPLEMENTED,
  Cancelled: status.CANCELLED,
  Internal: status.INTERNAL,
};

/**
 * The longest message a status carries. Inputs are quoted in part where
 * messages are made (quote() in src/errors.ts); this is the last guard, so
 * that no message (an OS error naming a long path, say) can break the
 * client's HTTP/2 session with a huge grpc-message header.
 */
export const MESSAGE_LIMIT = 1024;

export function limitMessage(message: string): string {
  if (message.length <= MESSAGE_LIMIT) return message;
  return `${message.slice(0, MESSAGE_LIMIT)}… (message cut at ${MESSAGE_LIMIT} of ${message.length} characters)`;
}

/** The gRPC status code and message for anything a handler threw. */
export function toStatus(err: unknown): { code: status; details: string } {
  const { code, details } = classify(err);
  return { code, details: limitMessage(details) };
}

function classify(err: unknown): { code: status; details: string } {
  if (err instanceof DomainError) return { code: CODES[err.kind], details: err.message };
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as Error & { cause?: unknown }).cause;
    if (reason instanceof DomainError) return { code: CODES[reason.kind], details: reason.message };
    return { code: status.CANCELLED, details: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message };
}
