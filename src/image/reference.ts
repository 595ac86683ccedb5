// Image references as kubelet and crictl write them, normalised the way
// Docker and containerd do: `busybox` is docker.io/library/busybox:latest.
import { digestProblem } from './digest.ts';
import { quote } from '../errors.ts';

export interface ImageReference {
  /** Registry host, with port if any (docker.io for Docker Hub). */
  domain: string;
  /** Repository path within the registry (library/busybox). */
  path: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** An image id: a config digest, or the hex of a sha256 one alone. */
export const IMAGE_ID = /^(sha256:)?[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;

export class ReferenceError extends Error {}

/** Parses and normalises a reference; a reference without tag or digest gets :latest. */
export function parseReference(input: string): ImageReference {
  const text = input.trim();
  if (!text) throw new ReferenceError('the image reference is empty');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) throw new ReferenceError(`the digest in image reference ${quote(input)} ${problem}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ReferenceError(`invalid tag ${quote(tag)} in image reference ${quote(input)}`);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  let domain = 'docker.io';
  let path = rest;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  // The distribution reference grammar's limit on a repository name.
  if (domain.length + 1 + path.length > 255) throw new ReferenceError(`image reference ${quote(input)} names a repository longer than 255 characters`);
  if (!path.split('/').every((c) => COMPONENT.test(c))) {
    throw new ReferenceError(`invalid repository name ${quote(path)} in image reference ${quote(input)}: use lowercase letters, digits and separators`);
  }
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(domain))
    throw new ReferenceError(`invalid registry host ${quote(domain)} in image reference ${quote(input)}`);
  if (!tag && !digest) tag = 'latest';
  return { domain, path, tag, digest };
}

export function repository(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The normalised string: name:tag, name@digest, or name:tag@digest. */
export function formatReference(ref: ImageReference): string {
  return `${repository(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** A full image id (sha256:...) when the input is one, with or without the prefix. */
export function asImageId(input: string): string | undefined {
  return IMAGE_ID.test(input) ? (input.includes(':') ? input : `sha256:${input}`) : undefined;
}
