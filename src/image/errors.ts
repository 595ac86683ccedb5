// Pull failures as gRPC statuses a user can act on.
import { status } from '@grpc/grpc-js';
import { CriError } from '../server/errors.ts';
import { ReferenceError } from './reference.ts';
import { NotFoundError, PullStalledError } from './pull.ts';
import { RegistryError } from './registry.ts';
import { DigestMismatchError } from './content.ts';
import { PullTimeoutError } from './service.ts';
import { LayerError } from '../snapshot/layer.ts';

/** The cause of an abort (stream pipelines wrap the signal's reason in an AbortError). */
function unwrap(err: unknown): unknown {
  if (err instanceof Error && err.name === 'AbortError' && (err as Error & { cause?: unknown }).cause instanceof Error) return (err as Error & { cause?: unknown }).cause;
  return err;
}

export function pullError(image: string, thrown: unknown): unknown {
  const err = unwrap(thrown);
  if (err instanceof CriError) return err;
  const message = (err as Error)?.message ?? String(err);
  if (err instanceof ReferenceError) return new CriError(status.INVALID_ARGUMENT, message);
  if (err instanceof NotFoundError) return new CriError(status.NOT_FOUND, message);
  if (err instanceof PullStalledError || err instanceof PullTimeoutError) return new CriError(status.DEADLINE_EXCEEDED, `cannot pull ${image}: ${message}`);
  if (err instanceof RegistryError && err.status === 401) return new CriError(status.UNAUTHENTICATED, `cannot pull ${image}: ${message}`);
  if (err instanceof RegistryError) return new CriError(status.UNAVAILABLE, message);
  if (err instanceof DigestMismatchError) return new CriError(status.DATA_LOSS, `cannot pull ${image}: ${message}`);
  if (err instanceof LayerError) return new CriError(status.FAILED_PRECONDITION, `cannot pull ${image}: a layer is unsafe: ${message}`);
  return thrown;
}
