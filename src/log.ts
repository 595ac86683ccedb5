// The daemon's structured log (pino, JSON lines on stdout).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    // Not pino's usual `name`: lines about an object carry that object's `name`.
    base: { daemon: 'tscri' },
    // Credentials must never reach the log, wherever they appear in an object.
    redact: {
      paths: [
        '*.auth',
        '*.password',
        '*.identity_token',
        '*.registry_token',
        '*.*.auth',
        '*.*.password',
        '*.*.identity_token',
        '*.*.registry_token',
        'authorization',
        '*.authorization',
        'headers.authorization',
      ],
      censor: '[redacted]',
    },
  });
}
