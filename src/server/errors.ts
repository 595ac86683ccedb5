// Errors that carry a gRPC status code, and the mapping of any thrown value
// to the status a CRI client receives.
import { status } from '@grpc/grpc-js';

export class CriError extends Error {
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.code = code;
  }
}

export const invalidArgument = (msg: string) => new CriError(status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CriError(status.NOT_FOUND, msg);
export const alreadyExists = (msg: string) => new CriError(status.ALREADY_EXISTS, msg);
export const failedPrecondition = (msg: string) => new CriError(status.FAILED_PRECONDITION, msg);
export const deadlineExceeded = (msg: string) => new CriError(status.DEADLINE_EXCEEDED, msg);
export const unavailable = (msg: string) => new CriError(status.UNAVAILABLE, msg);
export const unimplemented = (msg: string) => new CriError(status.UNIMPLEMENTED, msg);
export const resourceExhausted = (msg: string) => new CriError(status.RESOURCE_EXHAUSTED, msg);
export const internal = (msg: string) => new CriError(status.INTERNAL, msg);
export const cancelled = (msg: string) => new CriError(status.CANCELLED, msg);

/** The gRPC status code and message for anything a handler threw. */
export function toStatus(err: unknown): { code: status; details: string } {
  if (err instanceof CriError) return { code: err.code, details: err.message };
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as Error & { cause?: unknown }).cause;
    if (reason instanceof CriError) return { code: reason.code, details: reason.message };
    return { code: status.CANCELLED, details: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message };
}
