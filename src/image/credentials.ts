// Which credentials go to which registry host. Credentials are sent only to
// the host they were given for: those of a pull request (unless its
// server_address names another registry) or of [registry.auths."<registry>"]
// go to the image's own registry (or the `server` its own hosts.toml names
// for it), and nowhere else. A mirror gets only what is configured for it
// under its own name, [registry.auths."<mirror host[:port]>"].
import type { RegistryAuth } from '../config/config.ts';
import type { RegistryEndpoint } from './hosts.ts';
import type { Credentials } from './registry.ts';

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
