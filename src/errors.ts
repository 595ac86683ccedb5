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
