// The import graph of src/ follows the layer order: each folder imports only from
// folders below it, and no file reaches itself through its imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** Top to bottom; a folder may import from its own folder and from any later entry. */
const LAYERS: string[][] = [
  ['cli.ts'],
  ['daemon.ts'],
  ['server'],
  ['stream'],
  ['container'],
  ['sandbox'],
  ['image'],
  ['checkpoint', 'nri'],
  ['oci'],
  ['network', 'cgroups', 'snapshot'],
  ['store'],
  ['config'],
  ['metrics.ts', 'systemd'],
  ['log.ts', 'errors.ts', 'sys'],
  ['generated'],
];

function rank(file: string): number {
  const top = file.split('/')[0]!;
  const i = LAYERS.findIndex((names) => names.includes(top));
  if (i < 0) throw new Error(`${file}: folder ${top} has no place in the layer order of this test`);
  return i;
}

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => relative(SRC, resolve(dirname(join(SRC, file)), s)));
}

const files = sources().filter((f) => !f.startsWith('generated/'));
const graph = new Map(files.map((f) => [f, imports(f)]));

test('every import points down the layer order', () => {
  const upward: string[] = [];
  for (const [file, targets] of graph) {
    for (const target of targets) {
      if (target.split('/')[0] === file.split('/')[0]) continue;
      if (rank(target) <= rank(file)) upward.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(upward, []);
});

test('there is no import cycle', () => {
  const cycles: string[] = [];
  const done = new Set<string>();
  const visit = (file: string, path: string[]) => {
    const at = path.indexOf(file);
    if (at >= 0) {
      cycles.push([...path.slice(at), file].join(' -> '));
      return;
    }
    if (done.has(file)) return;
    for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});

test('only the server speaks gRPC', () => {
  const outside = files.filter((f) => !f.startsWith('server/') && f !== 'daemon.ts' && /from '@grpc\/grpc-js'/.test(readFileSync(join(SRC, f), 'utf8')));
  assert.deepEqual(outside, []);
});

test('no `any` outside the generated code', () => {
  const uses = files.flatMap((f) =>
    readFileSync(join(SRC, f), 'utf8')
      .split('\n')
      .map((line, i) => ({ line, at: `${f}:${i + 1}` }))
      .filter(({ line }) => !/^\s*(\/\/|\*|\/\*)/.test(line) && /(:\s*any\b|<any\b|\bas any\b|\bany\[\]|,\s*any>)/.test(line))
      .map(({ at }) => at),
  );
  assert.deepEqual(uses, []);
});
