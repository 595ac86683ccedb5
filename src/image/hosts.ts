// Registry hosts configuration in containerd's hosts.toml format:
// <config_path>/<host>/hosts.toml (or _default/hosts.toml) lists mirrors
// ([host."URL"], tried in order) before the upstream `server`, each with its
// capabilities, TLS verification and CA settings.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';

export interface RegistryEndpoint {
  /** Base URL including /v2, e.g. https://mirror.example.com/v2 */
  url: string;
  /** The host whose credentials apply. */
  host: string;
  capabilities: string[];
  skipVerify: boolean;
  ca?: string;
  /** Client certificate and key files for mutual TLS. */
  client?: { cert: string; key: string };
  /** Extra request headers ([header] or [host."…".header]). */
  headers: Record<string, string>;
  /** Also try plain HTTP when HTTPS fails (loopback registries without TLS). */
  httpFallback: boolean;
  /**
   * Whether this is the registry's own server (the registry itself, or the
   * `server` of its own hosts.toml), to which its credentials may go.
   * Mirrors and anything from _default/hosts.toml are not.
   */
  ownServer: boolean;
}

function baseUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/v2') ? trimmed : `${trimmed}/v2`;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name.startsWith('127.') || name === '::1';
}

/** The upstream URL of a registry host when nothing is configured. */
export function defaultEndpoint(host: string): RegistryEndpoint {
  const server = host === 'docker.io' ? 'registry-1.docker.io' : host;
  return {
    url: `https://${server}/v2`,
    host: server,
    capabilities: ['pull', 'resolve'],
    skipVerify: false,
    headers: {},
    httpFallback: isLoopback(host),
    ownServer: true,
  };
}

function asStrings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : undefined;
}

/** A client setting: "cert" alone (cert and key in one file), ["cert", "key"], or a list of those. */
function clientPair(value: unknown, resolve: (p: string) => string): { cert: string; key: string } | undefined {
  const first = Array.isArray(value) && Array.isArray(value[0]) ? value[0] : value;
  if (typeof first === 'string') return { cert: resolve(first), key: resolve(first) };
  if (Array.isArray(first) && typeof first[0] === 'string') return { cert: resolve(first[0]), key: resolve(String(first[1] ?? first[0])) };
  return undefined;
}

function headersOf(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out[k.toLowerCase()] = Array.isArray(v) ? v.map(String).join(', ') : String(v);
  }
  return out;
}

/** A hosts.toml table as parsed: values are checked where they are read. */
type HostsToml = Record<string, unknown>;

const isTable = (v: unknown): v is HostsToml => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses one hosts.toml text into endpoints (mirrors first, then the server).
 * Relative certificate paths are relative to the file's directory (`dir`).
 */
export function parseHostsToml(text: string, host: string, dir = '/', own = true): RegistryEndpoint[] {
  const doc: HostsToml = parseToml(text);
  const endpoints: RegistryEndpoint[] = [];
  const resolve = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  const entry = (url: string, settings: HostsToml, ownServer: boolean): RegistryEndpoint => ({
    url: baseUrl(url),
    host: new URL(url).host,
    capabilities: asStrings(settings.capabilities) ?? ['pull', 'resolve'],
    skipVerify: settings.skip_verify === true,
    ca: asStrings(settings.ca)?.map(resolve)[0],
    client: clientPair(settings.client, resolve),
    headers: { ...headersOf(doc.header), ...headersOf(settings.header) },
    httpFallback: false,
    ownServer,
  });
  for (const [url, settings] of Object.entries(isTable(doc.host) ? doc.host : {})) {
    if (!isTable(settings)) continue;
    endpoints.push(entry(url.includes('://') ? url : `https://${url}`, settings, false));
  }
  if (typeof doc.server === 'string') endpoints.push(entry(doc.server, doc, own));
  else endpoints.push(defaultEndpoint(host));
  return endpoints;
}

/** Endpoints to try for a registry host, from <configPath>/<host>/hosts.toml or _default. */
export async function endpointsFor(configPath: string, host: string): Promise<RegistryEndpoint[]> {
  if (configPath) {
    const dirName = host.replace(/:(\d+)$/, ':$1');
    for (const dir of [dirName, '_default']) {
      if (dir.includes('/') || dir.includes('..')) continue;
      const file = join(configPath, dir, 'hosts.toml');
      const text = await readFile(file, 'utf8').catch(() => undefined);
      // A server named in _default/hosts.toml serves every registry: it is not any one registry's own.
      if (text !== undefined) return parseHostsToml(text, host, dirname(file), dir !== '_default');
    }
  }
  return [defaultEndpoint(host)];
}
