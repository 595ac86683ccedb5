// The daemon's structured log (pino, JSON lines on stdout).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { name: 'tscri' },
    // Credentials must never reach the log, wherever they appear in an object.
    redact: {
      paths: ['*.auth', '*.password', '*.identity_token', '*.registry_token', '*.*.auth', '*.*.password', '*.*.identity_token', '*.*.registry_token', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
