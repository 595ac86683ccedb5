// A request that cannot become a valid OCI spec: reported as INVALID_ARGUMENT.
import { status } from '@grpc/grpc-js';
import { CriError } from '../server/errors.ts';

export class SpecError extends CriError {
  constructor(message: string) {
    super(status.INVALID_ARGUMENT, message);
    this.name = 'SpecError';
  }
}
