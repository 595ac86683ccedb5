// A request that cannot become a valid OCI spec: reported as INVALID_ARGUMENT.
import { DomainError } from '../errors.ts';

export class SpecError extends DomainError {
  constructor(message: string) {
    super('InvalidArgument', message);
    this.name = 'SpecError';
  }
}
