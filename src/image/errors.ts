// Pull failures as gRPC statuses a user can act on.
import { DomainError } from '../errors.ts';
import { ReferenceError } from './reference.ts';
import { NotFoundError, PullStalledError, PullTimeoutError } from './pull.ts';
import { RegistryError } from './registry.ts';
import { DigestMismatchError } from './content.ts';
import { LayerError } from '../snapshot/layer.ts';
import { TooLargeError } from './body.ts';
import { ImageFormatError } from './validate.ts';
import { CredentialSourceError } from './cred-helper.ts';
import { diskFullCode } from '../store/disk-full.ts';

/** The cause of an abort (stream pipelines wrap the signal's reason in an AbortError). */
function unwrap(err: unknown): unknown {
  if (err instanceof Error && err.name === 'AbortError' && (err as Error & { cause?: unknown }).cause instanceof Error)
    return (err as Error & { cause?: unknown }).cause;
  return err;
}

/** root: where images are stored, named when the disk is full. */
export function pullError(image: string, thrown: unknown, root = ''): unknown {
  const err = unwrap(thrown);
  if (err instanceof DomainError) return err;
  const reason = (err as Error)?.message ?? String(err);
  // Every message names the image once.
  const message = reason.startsWith('cannot pull ') ? reason : `cannot pull ${image}: ${reason}`;
  if (err instanceof ReferenceError) return new DomainError('InvalidArgument', reason);
  if (err instanceof NotFoundError) return new DomainError('NotFound', message);
  if (err instanceof PullStalledError || err instanceof PullTimeoutError) return new DomainError('DeadlineExceeded', message);
  if (err instanceof RegistryError && err.status === 401) return new DomainError('Unauthenticated', message);
  if (err instanceof RegistryError) return new DomainError('Unavailable', message);
  if (err instanceof TooLargeError) return new DomainError('ResourceExhausted', message);
  if (err instanceof ImageFormatError) return new DomainError('FailedPrecondition', message);
  if (err instanceof CredentialSourceError) return new DomainError('FailedPrecondition', message);
  if (err instanceof DigestMismatchError) return new DomainError('DataLoss', message);
  if (err instanceof LayerError) return new DomainError('FailedPrecondition', message);
  const full = diskFullCode(err);
  if (full) {
    const what = full === 'EDQUOT' ? 'the disk quota' : 'the disk';
    return new DomainError('ResourceExhausted', `cannot pull ${image}: ${what}${root ? ` of ${root}` : ''} is full (${full}): ${reason}`);
  }
  return thrown;
}
