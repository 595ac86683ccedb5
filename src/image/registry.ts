// A client of the OCI distribution API for one repository on one endpoint:
// anonymous, basic and bearer-token authentication (token cached per scope),
// retries with backoff on server and connection errors (honouring
// Retry-After), TLS settings from hosts.toml. Credentials never appear in
// errors or logs.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Dispatcher, Response } from 'undici';

type Undici = typeof import('undici');
let undici: Undici | undefined;
/** undici (about 20 MiB of the daemon's memory) is loaded at the first registry call, not at start. */
async function loadUndici(): Promise<Undici> {
  return (undici ??= await import('undici'));
}
import type { RegistryEndpoint } from './hosts.ts';
import { TOKEN_LIMIT, TooLargeError, errorReason, quote, readBody } from './body.ts';

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
  /** The registry these were given for (a pull request's server_address), when it says. */
  serverAddress?: string;
}

export class RegistryError extends Error {
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

/**
 * What a request reports while it runs: arm() whenever the registry sends
 * something (an answer, a chunk), pause() while tscri itself waits (a
 * Retry-After), so a stall timer measures only the registry's silence.
 */
export interface Progress {
  arm(): void;
  pause(): void;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Bounds this request; default: the client's (the pull's). */
  signal?: AbortSignal;
  progress?: Progress;
}

const tokenCache = new Map<string, { token: string; expires: number }>();
const agents = new Map<string, Dispatcher>();
const RETRIES = 3;
/** The longest Retry-After tscri waits; a registry asking for more fails the pull at once. */
export const RETRY_AFTER_MAX_MS = 60_000;

/** A connection pool with the endpoint's TLS settings (shared by endpoints with the same settings). */
function agentFor(u: Undici, endpoint: RegistryEndpoint): Dispatcher | undefined {
  if (!endpoint.skipVerify && !endpoint.ca && !endpoint.client) return undefined;
  const key = JSON.stringify([endpoint.skipVerify, endpoint.ca ?? '', endpoint.client ?? '']);
  let agent = agents.get(key);
  if (!agent) {
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new RegistryError(`cannot read the ${what} ${file} configured for ${endpoint.host}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
    };
    agent = new u.Agent({
      connect: {
        rejectUnauthorized: !endpoint.skipVerify,
        ca: endpoint.ca ? read(endpoint.ca, 'CA file') : undefined,
        cert: endpoint.client ? read(endpoint.client.cert, 'client certificate') : undefined,
        key: endpoint.client ? read(endpoint.client.key, 'client key') : undefined,
      },
    });
    agents.set(key, agent);
  }
  return agent;
}

/** Parses a WWW-Authenticate challenge: scheme and its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const match of header.slice(space + 1).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) {
    params[match[1]!.toLowerCase()] = match[2] ?? match[3] ?? '';
  }
  return { scheme, params };
}

/** Delay before retry n (1, 2, ...): exponential with jitter, so many clients do not retry in step. */
export function backoff(attempt: number): number {
  return Math.round(250 * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/**
 * The wait a Retry-After header asks for, in milliseconds (delta-seconds or
 * an HTTP date); undefined when absent or unreadable.
 */
export function retryAfter(header: string | null, now = Date.now()): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CERTIFICATE_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;

/** The system error code behind a fetch failure (fetch wraps it in `cause`). */
function errorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && e.code !== 'UND_ERR_SOCKET') return e.code;
  }
  return undefined;
}

export class RegistryClient {
  readonly endpoint: RegistryEndpoint;
  private readonly repo: string;
  private readonly credentials: Credentials;
  private readonly signal?: AbortSignal;
  private readonly deadline: () => number;
  private authorization: string | undefined;
  private baseUrl: string;

  /** deadline: epoch milliseconds by which the pull must end (Infinity when none). */
  constructor(endpoint: RegistryEndpoint, repo: string, credentials: Credentials, signal?: AbortSignal, deadline: () => number = () => Infinity) {
    this.endpoint = endpoint;
    this.repo = repo;
    this.credentials = credentials;
    this.signal = signal;
    this.deadline = deadline;
    this.baseUrl = endpoint.url;
  }

  /**
   * GET a path under /v2/<repo>/, authenticating on a 401 challenge and
   * retrying server errors, rate limits and connection failures with backoff
   * (or after the Retry-After the registry asks for, within the pull's deadline).
   */
  async get(path: string, options: RequestOptions = {}): Promise<Response> {
    const { headers = {}, signal = this.signal, progress } = options;
    let lastError: unknown;
    let wait = 0;
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      if (attempt) {
        // tscri waits here, not the registry: the stall timer stops meanwhile.
        progress?.pause();
        await sleep(wait || backoff(attempt), signal);
        progress?.arm();
      }
      try {
        let res = await this.send(path, headers, signal);
        progress?.arm();
        if (res.status === 401) {
          await res.body?.cancel();
          await this.authenticate(res.headers.get('www-authenticate') ?? '', signal, progress);
          res = await this.send(path, headers, signal);
          progress?.arm();
        }
        if (res.status >= 500 || res.status === 429) {
          wait = this.retryWait(res, path);
          const reason = await errorReason(res, progress?.arm);
          lastError = new RegistryError(
            `registry ${this.endpoint.host} answered ${res.status} for ${this.repo}/${path}${reason ? `: ${reason}` : ''}`,
            res.status,
          );
          continue;
        }
        return res;
      } catch (err) {
        // Only failures to connect or transfer are retried.
        if (signal?.aborted || err instanceof RegistryError || err instanceof TooLargeError) throw err;
        lastError = err;
        wait = 0;
      }
    }
    throw lastError instanceof RegistryError
      ? lastError
      : new RegistryError(`cannot reach registry ${this.endpoint.host}: ${(lastError as Error)?.message ?? lastError}`);
  }

  /**
   * How long to wait before retrying a 429 or 5xx answer: its Retry-After,
   * if any (0: the usual backoff). A wait longer than RETRY_AFTER_MAX_MS or
   * past the pull's deadline fails now, naming it.
   */
  private retryWait(res: Response, path: string): number {
    const ms = retryAfter(res.headers.get('retry-after'));
    if (ms === undefined) return 0;
    const seconds = Math.ceil(ms / 1000);
    const asks = `registry ${this.endpoint.host} answered ${res.status} for ${this.repo}/${path} and asks to retry after ${seconds}s`;
    if (ms > RETRY_AFTER_MAX_MS) throw new RegistryError(`${asks}, longer than tscri waits (${RETRY_AFTER_MAX_MS / 1000}s); try again later`, res.status);
    if (Date.now() + ms > this.deadline()) throw new RegistryError(`${asks}, past the pull's deadline`, res.status);
    return ms;
  }

  private async send(path: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<Response> {
    const u = await loadUndici();
    const url = `${this.baseUrl}/${this.repo}/${path}`;
    // Redirects (to blob storage) are followed; fetch drops the Authorization header when one leaves the registry's origin.
    const init = {
      headers: { ...this.endpoint.headers, ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
      signal,
      dispatcher: agentFor(u, this.endpoint),
      redirect: 'follow' as const,
    };
    try {
      return await u.fetch(url, init);
    } catch (err) {
      const code = errorCode(err);
      if (code && CERTIFICATE_ERRORS.test(code)) {
        throw new RegistryError(`the TLS certificate of ${this.endpoint.host} is not trusted (${code}); set ca (or skip_verify) for it in hosts.toml`);
      }
      // Loopback registries commonly serve plain HTTP.
      if (this.endpoint.httpFallback && this.baseUrl.startsWith('https://') && !signal?.aborted) {
        this.baseUrl = `http://${this.baseUrl.slice('https://'.length)}`;
        return u.fetch(`${this.baseUrl}/${this.repo}/${path}`, init);
      }
      throw err;
    }
  }

  private async authenticate(header: string, signal: AbortSignal | undefined, progress: Progress | undefined): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    const creds = this.credentials;
    if (scheme === 'basic') {
      if (!creds.username)
        throw new RegistryError(
          `registry ${this.endpoint.host} requires credentials for ${this.repo}; pass them with the pull or configure [registry.auths."${this.endpoint.host}"]`,
          401,
        );
      this.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      return;
    }
    if (scheme !== 'bearer')
      throw new RegistryError(`registry ${this.endpoint.host} asks for unsupported authentication ${JSON.stringify(quote(scheme))}`, 401);
    if (creds.registryToken) {
      this.authorization = `Bearer ${creds.registryToken}`;
      return;
    }
    const scope = params.scope ?? `repository:${this.repo}:pull`;
    // Keyed by a hash of the credentials too, so a token is never reused for someone else's (or wrong) credentials.
    const who = createHash('sha256')
      .update(JSON.stringify([creds.username ?? '', creds.password ?? '', creds.identityToken ?? '']))
      .digest('hex');
    const key = [params.realm, params.service, scope, who].join('|');
    const cached = tokenCache.get(key);
    if (cached && cached.expires > Date.now()) {
      this.authorization = `Bearer ${cached.token}`;
      return;
    }
    const token = await this.fetchToken(params.realm ?? '', params.service ?? '', scope, signal, progress);
    tokenCache.set(key, { token: token.token, expires: Date.now() + Math.max(30, token.expiresIn - 10) * 1000 });
    this.authorization = `Bearer ${token.token}`;
  }

  private async fetchToken(
    realm: string,
    service: string,
    scope: string,
    signal: AbortSignal | undefined,
    progress: Progress | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    if (!/^https?:\/\//.test(realm)) throw new RegistryError(`registry ${this.endpoint.host} gave an invalid token realm`, 401);
    const creds = this.credentials;
    const u = await loadUndici();
    let res: Response;
    if (creds.identityToken) {
      const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service, scope, client_id: 'tscri' });
      res = await u.fetch(realm, { method: 'POST', body, signal, dispatcher: agentFor(u, this.endpoint) });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      url.searchParams.set('scope', scope);
      const headers: Record<string, string> = {};
      if (creds.username) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      res = await u.fetch(url, { headers, signal, dispatcher: agentFor(u, this.endpoint) });
    }
    progress?.arm();
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new RegistryError(`the token service of ${this.endpoint.host} refused the credentials for ${this.repo}`, 401);
    }
    if (!res.ok) {
      const reason = await errorReason(res, progress?.arm);
      throw new RegistryError(`the token service of ${this.endpoint.host} answered ${res.status}${reason ? `: ${reason}` : ''}`, res.status);
    }
    const body = await readBody(res, TOKEN_LIMIT, `the token response of ${this.endpoint.host}`, progress?.arm);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError(`the token service of ${this.endpoint.host} answered with something that is not JSON`);
    }
    const token = typeof json?.token === 'string' && json.token ? json.token : typeof json?.access_token === 'string' ? json.access_token : '';
    if (!token) throw new RegistryError(`the token service of ${this.endpoint.host} returned no token`);
    const expiresIn = typeof json.expires_in === 'number' && Number.isFinite(json.expires_in) ? json.expires_in : 60;
    return { token, expiresIn };
  }
}
