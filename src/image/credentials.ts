// Which credentials go to which registry host. Credentials are sent only to
// the host they were given for: those of a pull request (unless its
// server_address names another registry) or of [registry.auths."<registry>"]
// go to the image's own registry (or the `server` its own hosts.toml names
// for it), and nowhere else. A mirror gets only what is configured for it
// under its own name, [registry.auths."<mirror host[:port]>"].
//
// When neither has any, credential helpers and the auth file are asked, by
// the same host: [registry.cred_helpers]/credHelpers for that host, else
// creds_store/credsStore, else the auth file's auths entry for that host.
import type { RegistryAuth } from '../config/config.ts';
import type { RegistryEndpoint } from './hosts.ts';
import type { Credentials } from './registry.ts';
import { helperCredentials, readAuthFile } from './cred-helper.ts';

/** The names Docker Hub goes by: its credentials are the same under each. */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function sameRegistry(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || (DOCKER_HUB.has(x) && DOCKER_HUB.has(y));
}

/** The host[:port] of a server address as kubelet and Docker configs write it ("https://index.docker.io/v1/", "host:5000"). */
export function serverHost(address: string): string {
  const text = address.trim();
  try {
    return new URL(text.includes('://') ? text : `https://${text}`).host;
  } catch {
    return text;
  }
}

/** The request's credentials as a pull request and the config give them. */
export interface CredentialSources {
  /** Credential helpers and the auth file, asked when nothing else has credentials for the host. */
  helpers?: { credHelpers: Record<string, string>; credsStore: string; authFile: string };
  /** From PullImageRequest.auth, if any. */
  requested?: Credentials;
  /** [registry.auths], keyed by host (or server address). */
  configured: Record<string, RegistryAuth>;
  /** Turns a configured entry into credentials. */
  decode: (auth: RegistryAuth) => Credentials | undefined;
}

/** What to send to endpoint while pulling an image of registry (the reference's host). */
export function credentialsFor(endpoint: Pick<RegistryEndpoint, 'host' | 'ownServer'>, registry: string, sources: CredentialSources): Credentials {
  const configuredFor = (host: string) => {
    for (const [key, auth] of Object.entries(sources.configured)) {
      if (sameRegistry(serverHost(key), host)) return sources.decode(auth);
    }
    return undefined;
  };
  if (!endpoint.ownServer) return configuredFor(endpoint.host) ?? {};
  const requested = sources.requested;
  if (requested && (!requested.serverAddress || sameRegistry(serverHost(requested.serverAddress), registry))) return requested;
  return configuredFor(registry) ?? configuredFor(endpoint.host) ?? {};
}

/** The address Docker's tools give helpers and auth files for a host (Docker Hub has its own). */
function helperServer(host: string): string {
  return DOCKER_HUB.has(host.toLowerCase()) ? 'https://index.docker.io/v1/' : host;
}

function entryFor<T>(table: Record<string, T>, host: string): T | undefined {
  for (const [key, value] of Object.entries(table)) if (sameRegistry(serverHost(key), host)) return value;
  return undefined;
}

/**
 * credentialsFor, then the credential helpers and the auth file for the
 * host those credentials would go to: the registry for its own server, the
 * mirror's own host for a mirror.
 */
export async function lookupCredentials(
  endpoint: Pick<RegistryEndpoint, 'host' | 'ownServer'>,
  registry: string,
  sources: CredentialSources,
): Promise<Credentials> {
  const found = credentialsFor(endpoint, registry, sources);
  if (Object.values(found).some(Boolean) || !sources.helpers) return found;
  const host = endpoint.ownServer ? registry : endpoint.host;
  const { credHelpers, credsStore, authFile } = sources.helpers;
  const file = await readAuthFile(authFile);
  const helper = entryFor(credHelpers, host) ?? entryFor(file.credHelpers, host) ?? (credsStore || file.credsStore || undefined);
  if (helper) {
    const fromHelper = await helperCredentials(helper, helperServer(host));
    if (fromHelper) return fromHelper;
  }
  const entry = entryFor(file.auths, host);
  if (entry) {
    const decoded = sources.decode({
      username: entry.username ?? '',
      password: entry.password ?? '',
      auth: entry.auth ?? '',
      identity_token: entry.identitytoken ?? '',
    });
    if (decoded) return decoded;
  }
  return found;
}
