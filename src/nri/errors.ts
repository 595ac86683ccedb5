// Failures of NRI plugins as the runtime reports them: each names the plugin
// and the event, and says what kind of failure it was so the caller can map
// it to a status (a plugin's refusal, a timeout, or adjustments in conflict).

export type NriErrorKind =
  /** A plugin answered the event with an error. */
  | 'plugin-failed'
  /** A plugin did not answer within request_timeout. */
  | 'timeout'
  /** Plugins' adjustments conflict, or one is invalid or unsupported. */
  | 'invalid-adjustment';

export class NriError extends Error {
  readonly kind: NriErrorKind;
  constructor(kind: NriErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = 'NriError';
  }
}
