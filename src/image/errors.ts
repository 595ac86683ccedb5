// Pull failures as gRPC statuses a user can act on.
import { status } from '@grpc/grpc-js';
import { CriError } from '../server/errors.ts';
import { ReferenceError } from './reference.ts';
import { NotFoundError, PullStalledError } from './pull.ts';
import { RegistryError } from './registry.ts';
import { DigestMismatchError } from './content.ts';
import { PullTimeoutError } from './service.ts';
import { LayerError } from '../snapshot/layer.ts';
import { TooLargeError } from './body.ts';
import { ImageFormatError } from './validate.ts';
import { diskFullCode } from '../store/disk-full.ts';

/** The cause of an abort (stream pipelines wrap the signal's reason in an AbortError). */
function unwrap(err: unknown): unknown {
  if (err instanceof Error && err.name === 'AbortError' && (err as Error & { cause?: unknown }).cause instanceof Error) return (err as Error & { cause?: unknown }).cause;
  return err;
}

/** root: where images are stored, named when the disk is full. */
export function pullError(image: string, thrown: unknown, root = ''): unknown {
  const err = unwrap(thrown);
  if (err instanceof CriError) return err;
  const reason = (err as Error)?.message ?? String(err);
  // Every message names the image once.
  const message = reason.startsWith('cannot pull ') ? reason : `cannot pull ${image}: ${reason}`;
  if (err instanceof ReferenceError) return new CriError(status.INVALID_ARGUMENT, reason);
  if (err instanceof NotFoundError) return new CriError(status.NOT_FOUND, message);
  if (err instanceof PullStalledError || err instanceof PullTimeoutError) return new CriError(status.DEADLINE_EXCEEDED, message);
  if (err instanceof RegistryError && err.status === 401) return new CriError(status.UNAUTHENTICATED, message);
  if (err instanceof RegistryError) return new CriError(status.UNAVAILABLE, message);
  if (err instanceof TooLargeError) return new CriError(status.RESOURCE_EXHAUSTED, message);
  if (err instanceof ImageFormatError) return new CriError(status.FAILED_PRECONDITION, message);
  if (err instanceof DigestMismatchError) return new CriError(status.DATA_LOSS, message);
  if (err instanceof LayerError) return new CriError(status.FAILED_PRECONDITION, message);
  const full = diskFullCode(err);
  if (full) {
    const what = full === 'EDQUOT' ? 'the disk quota' : 'the disk';
    return new CriError(status.RESOURCE_EXHAUSTED, `cannot pull ${image}: ${what}${root ? ` of ${root}` : ''} is full (${full}): ${reason}`);
  }
  return thrown;
}
