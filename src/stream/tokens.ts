// Single-use, expiring tokens that tie a streaming URL to the request an
// Exec, Attach or PortForward call prepared.
import { randomBytes } from 'node:crypto';

export type StreamRequest =
  | { kind: 'exec'; containerId: string; cmd: string[]; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'attach'; containerId: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'portforward'; podSandboxId: string; ports: number[] };

export class TokenCache {
  private readonly entries = new Map<string, { request: StreamRequest; expires: number }>();
  private readonly ttlMs: () => number;

  constructor(ttlMs: () => number) {
    this.ttlMs = ttlMs;
  }

  /** Stores the request and returns a new unguessable token (128 random bits). */
  put(request: StreamRequest): string {
    this.sweep();
    const token = randomBytes(16).toString('base64url');
    this.entries.set(token, { request, expires: Date.now() + this.ttlMs() });
    return token;
  }

  /** Returns the request and forgets the token; undefined when unknown or expired. */
  take(token: string): StreamRequest | undefined {
    const entry = this.entries.get(token);
    this.entries.delete(token);
    if (!entry || entry.expires < Date.now()) return undefined;
    return entry.request;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, entry] of this.entries) if (entry.expires < now) this.entries.delete(token);
  }
}
