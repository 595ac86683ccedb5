// The pod's own files: hostname, hosts and resolv.conf (built from the
// request or copied from the host), and the pod's /dev/shm tmpfs.
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DNSConfig__Output } from '../generated/runtime/v1/DNSConfig.ts';
import { VOLATILE, writeFileAtomic } from '../store/store.ts';
import { mount, MS_NODEV, MS_NOEXEC, MS_NOSUID, unmountAll } from '../sys/mount.ts';
import { quote } from '../errors.ts';

/** Rejects values that could add lines or fields to a generated file. */
function checkToken(kind: string, value: string): void {
  if (!value || /[\s\0#;]/.test(value)) throw new Error(`invalid DNS ${kind} ${quote(value)}: it must be one word`);
}

/** resolv.conf from a pod's dns_config; undefined when it asks for nothing (the host's is used). */
export function buildResolvConf(dns: DNSConfig__Output | null | undefined): string | undefined {
  if (!dns || (!dns.servers.length && !dns.searches.length && !dns.options.length)) return undefined;
  const lines: string[] = [];
  dns.searches.forEach((s) => checkToken('search domain', s));
  dns.servers.forEach((s) => checkToken('server', s));
  dns.options.forEach((s) => checkToken('option', s));
  if (dns.searches.length) lines.push(`search ${dns.searches.join(' ')}`);
  for (const server of dns.servers) lines.push(`nameserver ${server}`);
  if (dns.options.length) lines.push(`options ${dns.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** /etc/hosts of a pod with its own network: localhost entries and the pod's name on its IPs. */
export function buildHosts(hostname: string, ips: string[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of ips) lines.push(`${ip}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}

/** A hostname the kernel and resolvers accept (RFC 1123 labels, at most 64 chars as UTS allows). */
export function checkHostname(hostname: string): void {
  if (hostname.length > 64 || !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(hostname)) {
    throw new Error(`invalid hostname ${quote(hostname)}: use RFC 1123 labels, at most 64 characters`);
  }
}

export interface PodFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
  shm?: string;
}

export function podFilePaths(dir: string, withShm: boolean): PodFiles {
  return {
    hostname: join(dir, 'hostname'),
    hosts: join(dir, 'hosts'),
    resolvConf: join(dir, 'resolv.conf'),
    shm: withShm ? join(dir, 'shm') : undefined,
  };
}

export async function writePodFiles(files: PodFiles, hostname: string, hosts: string | undefined, resolvConf: string | undefined): Promise<void> {
  await writeFileAtomic(files.hostname, `${hostname}\n`, 0o644, VOLATILE);
  if (hosts === undefined) await copyFile('/etc/hosts', files.hosts);
  else await writeFileAtomic(files.hosts, hosts, 0o644, VOLATILE);
  if (resolvConf === undefined) {
    const host = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    await writeFileAtomic(files.resolvConf, host, 0o644, VOLATILE);
  } else {
    await writeFileAtomic(files.resolvConf, resolvConf, 0o644, VOLATILE);
  }
}

export async function mountShm(dir: string, size: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  mount('shm', dir, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, `mode=1777,size=${Math.max(4096, Math.floor(size))}`);
}

/** Unmounts a path if it is mounted (stacked mounts too, lazily when busy); anything else (not mounted, missing) is fine. */
export async function unmount(path: string): Promise<void> {
  unmountAll(path);
}
