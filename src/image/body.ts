// Bounded reads of registry responses. Every body tscri keeps in memory has
// a limit, checked against the declared Content-Length before reading and
// against the bytes received while reading, so a registry that sends an
// endless or huge body costs at most the limit. Each chunk counts as
// progress (the caller re-arms its stall timer).
import type { Response } from 'undici';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Manifests and indexes (containerd's limit too). */
export const MANIFEST_LIMIT = 4 * MiB;
/** Image configs: containerd refuses larger ones too; a real config is a few KiB. */
export const CONFIG_LIMIT = 8 * MiB;
/** Token service answers: a JSON object with a token of a few KiB. */
export const TOKEN_LIMIT = 1 * MiB;
/** Of an error answer, only this much is read, to quote the registry's reason. */
export const ERROR_BODY_LIMIT = 64 * KiB;
/** The longest registry text quoted in a message. */
const QUOTE_LIMIT = 200;

/** A document larger than tscri accepts. */
export class TooLargeError extends Error {
  override name = 'TooLargeError';
}

export function formatSize(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

/**
 * The body of res, at most limit bytes; `what` names it in the error
 * ("manifest v1 from registry.example.com"). onChunk is called per chunk.
 */
export async function readBody(res: Response, limit: number, what: string, onChunk?: () => void): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLargeError(`${what} is larger than ${formatSize(limit)} (it declares ${declared} bytes)`);
  }
  return (await readAtMost(res, limit, onChunk, () => new TooLargeError(`${what} is larger than ${formatSize(limit)}`))).body;
}

/** Reads up to limit bytes; beyond it, cancels the body and throws tooLarge(), or stops quietly without it. */
async function readAtMost(res: Response, limit: number, onChunk?: () => void, tooLarge?: () => Error): Promise<{ body: Buffer; truncated: boolean }> {
  if (!res.body) return { body: Buffer.alloc(0), truncated: false };
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { body: Buffer.concat(chunks, length), truncated: false };
      onChunk?.();
      if (length + value.byteLength > limit) {
        chunks.push(Buffer.from(value.buffer, value.byteOffset, limit - length));
        length = limit;
        await reader.cancel().catch(() => undefined);
        if (tooLarge) throw tooLarge();
        return { body: Buffer.concat(chunks, length), truncated: true };
      }
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      length += value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
}

/** Registry text fit for a message: one line of printable characters, shortened. */
export function quote(text: string): string {
  const line = text
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return line.length > QUOTE_LIMIT ? `${line.slice(0, QUOTE_LIMIT)}…` : line;
}

/**
 * The reason an error answer gives, for a message: the codes and messages of
 * a distribution error document, else the start of the text; '' when none.
 * Reads at most ERROR_BODY_LIMIT bytes and never fails.
 */
export async function errorReason(res: Response, onChunk?: () => void): Promise<string> {
  try {
    const { body, truncated } = await readAtMost(res, ERROR_BODY_LIMIT, onChunk);
    const text = body.toString('utf8');
    if (!truncated) {
      const reasons = distributionErrors(text);
      if (reasons) return quote(reasons);
    }
    return quote(text);
  } catch {
    await res.body?.cancel().catch(() => undefined);
    return '';
  }
}

function distributionErrors(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const errors = (doc as { errors?: unknown })?.errors;
  if (!Array.isArray(errors) || !errors.length) return undefined;
  return (
    errors
      .map((e: { code?: unknown; message?: unknown }) =>
        [typeof e?.code === 'string' ? e.code : '', typeof e?.message === 'string' ? e.message : ''].filter(Boolean).join(': '),
      )
      .filter(Boolean)
      .join('; ') || undefined
  );
}
