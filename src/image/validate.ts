// Type checks of what a registry sends (manifests, indexes, image configs)
// and of image records read back from disk. A document that is not what
// the OCI image spec allows is refused at pull time with a message naming
// the field, so nothing wrongly typed is ever stored; a stored record that
// fails the same checks is skipped, never trusted.
import type { Index, ImageConfig, Manifest } from './types.ts';
import { digestProblem } from './digest.ts';
import { quote } from '../errors.ts';

/** An image document (or record) that is not what the image spec allows. */
export class ImageFormatError extends Error {
  override name = 'ImageFormatError';
}

type Doc = Record<string, unknown>;

/** A value as a message may show it: its type, and short values themselves. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return value.length > 40 ? 'a string' : `the string ${quote(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${String(value)}`;
  return `a ${typeof value}`;
}

/** Checks fields of one document, naming it and the field in every failure. */
class Checker {
  private readonly what: string;

  constructor(what: string) {
    this.what = what;
  }

  fail(path: string, expected: string, value: unknown): never {
    throw new ImageFormatError(`${this.what} field ${path} must be ${expected} (it is ${describe(value)})`);
  }

  object(value: unknown, path: string): Doc {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, 'an object', value);
    return value as Doc;
  }

  /** An optional field: absent, null, or of the type check() accepts. */
  optional<T>(doc: Doc, key: string, path: string, check: (value: unknown, path: string) => T): T | undefined {
    const value = doc[key];
    return value === undefined || value === null ? undefined : check(value, path);
  }

  string = (value: unknown, path: string): string => (typeof value === 'string' ? value : this.fail(path, 'a string', value));

  boolean = (value: unknown, path: string): boolean => (typeof value === 'boolean' ? value : this.fail(path, 'true or false', value));

  size = (value: unknown, path: string): number =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : this.fail(path, 'a size in bytes (a whole number, 0 or more)', value);

  number = (value: unknown, path: string): number => (typeof value === 'number' && Number.isFinite(value) ? value : this.fail(path, 'a number', value));

  strings = (value: unknown, path: string): string[] => {
    if (!Array.isArray(value)) this.fail(path, 'an array of strings', value);
    value.forEach((item, i) => this.string(item, `${path}[${i}]`));
    return value as string[];
  };

  /** An object whose values are all strings (annotations, labels). */
  stringMap = (value: unknown, path: string): Record<string, string> => {
    const doc = this.object(value, path);
    for (const [key, item] of Object.entries(doc)) if (typeof item !== 'string') this.fail(`${path}.${key}`, 'a string', item);
    return doc as Record<string, string>;
  };

  digest = (value: unknown, path: string): string => {
    const text = this.string(value, path);
    const problem = digestProblem(text);
    if (problem) throw new ImageFormatError(`${this.what} field ${path} ${problem}`);
    return text;
  };

  array<T>(value: unknown, path: string, each: (item: unknown, path: string) => T): T[] {
    if (!Array.isArray(value)) this.fail(path, 'an array', value);
    return value.map((item, i) => each(item, `${path}[${i}]`));
  }
}

/** A content descriptor: digest and size are required, as the spec says. */
function descriptor(c: Checker, value: unknown, path: string): void {
  const d = c.object(value, path);
  c.optional(d, 'mediaType', `${path}.mediaType`, c.string);
  c.digest(d.digest, `${path}.digest`);
  c.size(d.size, `${path}.size`);
  c.optional(d, 'annotations', `${path}.annotations`, c.stringMap);
  c.optional(d, 'urls', `${path}.urls`, c.strings);
}

function schemaVersion(c: Checker, doc: Doc): void {
  if (doc.schemaVersion !== 2) c.fail('schemaVersion', '2 (schema 1 manifests are not supported)', doc.schemaVersion);
}

/** An image manifest (OCI, or Docker schema 2). */
export function checkManifest(value: unknown, what: string): asserts value is Manifest {
  const c = new Checker(what);
  const doc = c.object(value, '(top level)');
  schemaVersion(c, doc);
  c.optional(doc, 'mediaType', 'mediaType', c.string);
  descriptor(c, doc.config, 'config');
  c.array(doc.layers, 'layers', (item, path) => descriptor(c, item, path));
  c.optional(doc, 'annotations', 'annotations', c.stringMap);
}

/** An image index (OCI, or a Docker manifest list). */
export function checkIndex(value: unknown, what: string): asserts value is Index {
  const c = new Checker(what);
  const doc = c.object(value, '(top level)');
  schemaVersion(c, doc);
  c.optional(doc, 'mediaType', 'mediaType', c.string);
  c.array(doc.manifests, 'manifests', (item, path) => {
    descriptor(c, item, path);
    c.optional(item as Doc, 'platform', `${path}.platform`, (p, pp) => {
      const platform = c.object(p, pp);
      c.optional(platform, 'os', `${pp}.os`, c.string);
      c.optional(platform, 'architecture', `${pp}.architecture`, c.string);
      c.optional(platform, 'variant', `${pp}.variant`, c.string);
      c.optional(platform, 'os.version', `${pp}.os.version`, c.string);
    });
  });
  c.optional(doc, 'annotations', 'annotations', c.stringMap);
}

/** The fields of an image config tscri reads, each of the type the spec gives it. */
export function checkConfig(value: unknown, what = 'image config'): asserts value is ImageConfig {
  const c = new Checker(what);
  const doc = c.object(value, '(top level)');
  c.optional(doc, 'architecture', 'architecture', c.string);
  c.optional(doc, 'os', 'os', c.string);
  c.optional(doc, 'variant', 'variant', c.string);
  c.optional(doc, 'created', 'created', c.string);
  c.optional(doc, 'config', 'config', (value, path) => {
    const config = c.object(value, path);
    c.optional(config, 'User', `${path}.User`, c.string);
    c.optional(config, 'Env', `${path}.Env`, c.strings);
    c.optional(config, 'Entrypoint', `${path}.Entrypoint`, c.strings);
    c.optional(config, 'Cmd', `${path}.Cmd`, c.strings);
    c.optional(config, 'WorkingDir', `${path}.WorkingDir`, c.string);
    c.optional(config, 'StopSignal', `${path}.StopSignal`, c.string);
    c.optional(config, 'Labels', `${path}.Labels`, c.stringMap);
    c.optional(config, 'ExposedPorts', `${path}.ExposedPorts`, (v, p) => c.object(v, p));
    c.optional(config, 'Volumes', `${path}.Volumes`, (v, p) => c.object(v, p));
    c.optional(config, 'ArgsEscaped', `${path}.ArgsEscaped`, c.boolean);
  });
  const rootfs = c.object(doc.rootfs, 'rootfs');
  c.optional(rootfs, 'type', 'rootfs.type', c.string);
  c.array(rootfs.diff_ids, 'rootfs.diff_ids', c.digest);
  c.optional(doc, 'history', 'history', (v, p) => c.array(v, p, (item, ip) => c.object(item, ip)));
}

/** A stored image record: every field the image service and its views read. */
export function checkRecord(value: unknown, what: string): void {
  const c = new Checker(what);
  const doc = c.object(value, '(top level)');
  c.digest(doc.id, 'id');
  c.strings(doc.repoTags, 'repoTags');
  c.strings(doc.repoDigests, 'repoDigests');
  c.size(doc.size, 'size');
  c.string(doc.manifestDigest, 'manifestDigest');
  c.array(doc.layers, 'layers', (item, path) => {
    const layer = c.object(item, path);
    c.digest(layer.digest, `${path}.digest`);
    c.string(layer.mediaType, `${path}.mediaType`);
    c.size(layer.size, `${path}.size`);
  });
  c.array(doc.diffIds, 'diffIds', c.digest);
  c.array(doc.chainIds, 'chainIds', c.digest);
  c.boolean(doc.pinned, 'pinned');
  c.stringMap(doc.annotations, 'annotations');
  c.number(doc.pulledAt, 'pulledAt');
  checkConfig(doc.config, `${what}: image config`);
}
