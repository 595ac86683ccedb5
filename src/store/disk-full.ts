// Recognising a full disk or an exhausted quota in any error: its errno
// code, or that of an error it wraps (stream pipelines and our own
// messages wrap the system's error in `cause`).

const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** ENOSPC or EDQUOT when err (or what it wraps) says the disk or the quota is full. */
export function diskFullCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && FULL.has(e.code)) return e.code;
  }
  return undefined;
}
