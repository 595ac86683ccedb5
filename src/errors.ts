// The runtime's error vocabulary: what went wrong, in terms of the request, with the
// underlying error as `cause`. The server maps each kind to a gRPC status in one place
// (src/server/errors.ts); nothing below the server knows about gRPC.

export type ErrorKind =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'ResourceExhausted'
  | 'Unauthenticated'
  | 'DataLoss'
  | 'Unimplemented'
  | 'Cancelled'
  | 'Internal';

export class DomainError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

const make = (kind: ErrorKind) => (message: string, cause?: unknown) => new DomainError(kind, message, cause);

export const invalidArgument = make('InvalidArgument');
export const notFound = make('NotFound');
export const alreadyExists = make('AlreadyExists');
export const failedPrecondition = make('FailedPrecondition');
export const unavailable = make('Unavailable');
export const deadlineExceeded = make('DeadlineExceeded');
export const resourceExhausted = make('ResourceExhausted');
export const unauthenticated = make('Unauthenticated');
export const dataLoss = make('DataLoss');
export const unimplemented = make('Unimplemented');
export const cancelled = make('Cancelled');
export const internal = make('Internal');

/** How much of a quoted input a message shows. */
export const QUOTE_LIMIT = 100;

/**
 * A value from a request (or from a file or a registry) for a message: as a
 * JSON string, its start only when it is long, with its length, so that an
 * error never carries a megabyte of someone's input back.
 */
export function quote(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= QUOTE_LIMIT) return JSON.stringify(value);
    return `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}… (${value.length} characters)`;
  }
  const json = JSON.stringify(value) ?? String(value);
  return json.length <= QUOTE_LIMIT ? json : `${json.slice(0, QUOTE_LIMIT)}… (${json.length} characters)`;
}
