// Credentials from Docker credential helpers and auth files, as Docker and
// CRI-O read them:
// - a helper is the program docker-credential-<name> on PATH; `get` reads the
//   registry's server address on stdin and answers
//   {"ServerURL": "...", "Username": "...", "Secret": "..."} (Username
//   "<token>" means Secret is an identity token); "credentials not found" on
//   a failure means it has none;
// - an auth file (Docker's config.json, containers' auth.json) has "auths"
//   (base64 "auth" or username/password, "identitytoken"), "credHelpers"
//   (host to helper) and "credsStore" (the helper for every other host).
// What a helper or file says is read within limits (64 KiB of output, 10 s,
// 1 MiB of file) and never quoted in errors or logs: it holds secrets.
import { access, constants, readFile, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { run } from '../sys/spawn.ts';
import type { Credentials } from './registry.ts';

export const HELPER_OUTPUT_LIMIT = 64 * 1024;
export const HELPER_TIMEOUT_MS = 10_000;
export const AUTH_FILE_LIMIT = 1024 * 1024;
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A helper or auth file that cannot give credentials: the node's configuration is wrong. */
export class CredentialSourceError extends Error {}

/** The docker-credential-<name> program on PATH. */
async function findHelper(name: string, path: string): Promise<string> {
  if (!HELPER_NAME.test(name))
    throw new CredentialSourceError(`the credential helper name ${JSON.stringify(name.slice(0, 64))} is not valid: letters, digits, '.', '_' and '-' only`);
  const program = `docker-credential-${name}`;
  for (const dir of path.split(delimiter).filter((d) => d.startsWith('/'))) {
    const file = join(dir, program);
    if (
      await access(file, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  throw new CredentialSourceError(`the credential helper ${program} is not installed (not found on PATH)`);
}

/**
 * Asks helper `name` for the credentials of server. Undefined when it has
 * none; CredentialSourceError when it cannot be run or answers wrongly.
 */
export async function helperCredentials(name: string, server: string, options: { path?: string; timeoutMs?: number } = {}): Promise<Credentials | undefined> {
  const file = await findHelper(name, options.path ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin');
  const program = `docker-credential-${name}`;
  const timeoutMs = options.timeoutMs ?? HELPER_TIMEOUT_MS;
  let result;
  try {
    result = await run(file, ['get'], { input: server, timeoutMs, killSignal: 'SIGKILL', maxBuffer: HELPER_OUTPUT_LIMIT });
  } catch (err) {
    if (err instanceof RangeError)
      throw new CredentialSourceError(`the credential helper ${program} wrote more than ${HELPER_OUTPUT_LIMIT / 1024} KiB for ${server}`);
    throw new CredentialSourceError(`the credential helper ${program} cannot be run: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (result.timedOut) throw new CredentialSourceError(`the credential helper ${program} did not answer within ${timeoutMs / 1000} s for ${server}`);
  if (result.code !== 0) {
    if (/credentials not found/i.test(result.stdout + result.stderr)) return undefined;
    throw new CredentialSourceError(
      `the credential helper ${program} failed for ${server} (${result.signal ? `killed by ${result.signal}` : `exit code ${result.code}`}); run "echo ${server} | ${program} get" to see why`,
    );
  }
  let answer: unknown;
  try {
    answer = JSON.parse(result.stdout);
  } catch {
    throw new CredentialSourceError(`the credential helper ${program} answered with something that is not JSON for ${server}`);
  }
  const a = answer as Record<string, unknown>;
  if (!a || typeof a !== 'object' || Array.isArray(a) || typeof a.Secret !== 'string' || (a.Username !== undefined && typeof a.Username !== 'string')) {
    throw new CredentialSourceError(`the credential helper ${program} answered for ${server} without a Username and Secret string`);
  }
  if (!a.Secret) return undefined;
  if (a.Username === '<token>') return { identityToken: a.Secret };
  return { username: (a.Username as string | undefined) || undefined, password: a.Secret };
}

export interface AuthFile {
  auths: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers: Record<string, string>;
  credsStore: string;
}

const EMPTY: AuthFile = { auths: {}, credHelpers: {}, credsStore: '' };

/** Reads an auth file; a missing file is empty, a malformed one an error that quotes none of it. */
export async function readAuthFile(file: string): Promise<AuthFile> {
  if (!file) return EMPTY;
  const info = await stat(file).catch(() => undefined);
  if (!info) return EMPTY;
  if (!info.isFile()) throw new CredentialSourceError(`[registry] auth_file ${file} is not a file`);
  if (info.size > AUTH_FILE_LIMIT) throw new CredentialSourceError(`[registry] auth_file ${file} is larger than ${AUTH_FILE_LIMIT / 1024 / 1024} MiB`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new CredentialSourceError(`[registry] auth_file ${file} is not valid JSON`);
  }
  const doc = parsed as Record<string, unknown>;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new CredentialSourceError(`[registry] auth_file ${file} is not a JSON object`);
  const table = (key: string): Record<string, unknown> => {
    const v = doc[key];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new CredentialSourceError(`[registry] auth_file ${file}: ${key} is not an object`);
    return v as Record<string, unknown>;
  };
  const auths: AuthFile['auths'] = {};
  for (const [host, entry] of Object.entries(table('auths'))) {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry))
      throw new CredentialSourceError(`[registry] auth_file ${file}: auths entry ${JSON.stringify(host.slice(0, 100))} is not an object`);
    const e = entry as Record<string, unknown>;
    for (const k of ['auth', 'username', 'password', 'identitytoken']) {
      if (e[k] !== undefined && typeof e[k] !== 'string')
        throw new CredentialSourceError(`[registry] auth_file ${file}: auths entry ${JSON.stringify(host.slice(0, 100))} has a ${k} that is not a string`);
    }
    auths[host] = e as AuthFile['auths'][string];
  }
  const credHelpers: Record<string, string> = {};
  for (const [host, name] of Object.entries(table('credHelpers'))) {
    if (typeof name !== 'string')
      throw new CredentialSourceError(`[registry] auth_file ${file}: credHelpers entry ${JSON.stringify(host.slice(0, 100))} is not a string`);
    credHelpers[host] = name;
  }
  const store = doc.credsStore;
  if (store !== undefined && typeof store !== 'string') throw new CredentialSourceError(`[registry] auth_file ${file}: credsStore is not a string`);
  return { auths, credHelpers, credsStore: (store as string | undefined) ?? '' };
}
