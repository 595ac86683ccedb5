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

/** The gRPC status code and message for anything a handler threw. */
export function toStatus(err: unknown): { code: status; details: string } {
  if (err instanceof DomainError) return { code: CODES[err.kind], details: err.message };
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as Error & { cause?: unknown }).cause;
    if (reason instanceof DomainError) return { code: CODES[reason.kind], details: reason.message };
    return { code: status.CANCELLED, details: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message };
}
