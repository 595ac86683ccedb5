// Content digests as the OCI image spec writes them (`algorithm:encoded`):
// which are well formed, which tscri can verify (sha256 and sha512, the two
// the spec registers), and the digest of some bytes. Content named by any
// other digest is refused, never fetched unverified.
import { createHash, type Hash } from 'node:crypto';

/** Supported algorithms and the length of their lowercase hex encoding. */
const ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type Algorithm = keyof typeof ALGORITHMS;

/** The spec's grammar: algorithm components joined by + . _ -, a colon, the encoded part. */
const GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Why value is not a digest tscri can verify (a phrase to follow its name), or undefined when it is one. */
export function digestProblem(value: string): string | undefined {
  const m = GRAMMAR.exec(value);
  if (!m) return 'is not a digest (algorithm:hex, such as sha256:<64 hex digits>)';
  const algorithm = m[1]!;
  if (!Object.hasOwn(ALGORITHMS, algorithm)) return `uses the digest algorithm ${algorithm}, which tscri cannot verify (sha256 and sha512 are supported)`;
  const length = ALGORITHMS[algorithm as Algorithm];
  if (m[2]!.length !== length || !/^[a-f0-9]+$/.test(m[2]!)) return `is not a valid ${algorithm} digest (${length} lowercase hex digits)`;
  return undefined;
}

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && digestProblem(value) === undefined;
}

/** The algorithm of a digest known to be valid. */
export function algorithmOf(digest: string): Algorithm {
  return digest.slice(0, digest.indexOf(':')) as Algorithm;
}

/** The encoded (hex) part of a digest known to be valid. */
export function encodedOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** A hash for checking content against digest (whose algorithm it uses). */
export function hasherFor(digest: string): { hash: Hash; result: () => string } {
  const algorithm = algorithmOf(digest);
  const hash = createHash(algorithm);
  return { hash, result: () => `${algorithm}:${hash.digest('hex')}` };
}

export function digestOf(data: Buffer | string, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** The directory names content is stored under, one per algorithm. */
export const ALGORITHM_NAMES = Object.keys(ALGORITHMS) as Algorithm[];
