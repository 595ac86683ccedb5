// A strict reader of the Prometheus text exposition format (version 0.0.4), as
// a scraper sees it: every line is a HELP, a TYPE, a comment, an empty line or
// a sample; every sample belongs to a family with a TYPE and a HELP; label
// values are unescaped; histograms have ascending buckets ending in +Inf that
// agree with _count. Anything else fails the test.
import assert from 'node:assert/strict';

export interface Series {
  /** The sample's name as exposed (name_bucket, name_sum... for histograms). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  series: Series[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };

function parseValue(text: string, line: string): number {
  if (/^[+-]?inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  assert.match(text, /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/, `a number in ${JSON.stringify(line)}`);
  return Number(text);
}

/** Parses `name{a="b",c="d"} value [timestamp]`. */
function parseSample(line: string): Series {
  const nameEnd = line.search(/[{ ]/);
  assert.ok(nameEnd > 0, `a sample line: ${JSON.stringify(line)}`);
  const name = line.slice(0, nameEnd);
  assert.match(name, NAME, `a metric name in ${JSON.stringify(line)}`);
  const labels: Record<string, string> = {};
  let i = nameEnd;
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const eq = line.indexOf('=', i);
      assert.ok(eq > i, `a label in ${JSON.stringify(line)}`);
      const key = line.slice(i, eq);
      assert.match(key, LABEL, `a label name in ${JSON.stringify(line)}`);
      assert.equal(line[eq + 1], '"', `a quoted label value in ${JSON.stringify(line)}`);
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\') {
          const next = line[++j];
          assert.ok(next === '\\' || next === '"' || next === 'n', `a valid escape in ${JSON.stringify(line)}`);
          value += next === 'n' ? '\n' : next;
        } else {
          value += line[j];
        }
      }
      assert.equal(line[j], '"', `a closed label value in ${JSON.stringify(line)}`);
      assert.ok(!(key in labels), `label ${key} once in ${JSON.stringify(line)}`);
      labels[key] = value;
      i = j + 1;
      if (line[i] === ',') i++;
      assert.ok(i < line.length, `a closed label set in ${JSON.stringify(line)}`);
    }
    i++;
  }
  assert.equal(line[i], ' ', `a space before the value in ${JSON.stringify(line)}`);
  const [valueText, timestamp, ...extra] = line.slice(i + 1).split(' ');
  assert.equal(extra.length, 0, `nothing after the timestamp in ${JSON.stringify(line)}`);
  if (timestamp !== undefined) assert.match(timestamp, /^-?\d+$/, `an integer timestamp in ${JSON.stringify(line)}`);
  return { name, labels, value: parseValue(valueText ?? '', line) };
}

/** Parses and checks a whole exposition; fails the test on anything malformed. */
export function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: '', help: '', series: [] }));
    return f;
  };
  const owner = (sampleName: string): Family | undefined => {
    for (const f of families.values()) {
      const suffixes = SUFFIXES[f.type] ?? [''];
      if (suffixes.some((s) => `${f.name}${s}` === sampleName)) return f;
    }
    return undefined;
  };
  for (const line of text.split('\n').slice(0, -1)) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta;
      assert.match(name!, NAME, `a metric name in ${JSON.stringify(line)}`);
      const f = family(name!);
      assert.equal(f.series.length, 0, `${kind} of ${name} before its samples`);
      if (kind === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), `a known type in ${JSON.stringify(line)}`);
        assert.equal(f.type, '', `one TYPE line for ${name}`);
        f.type = rest;
      } else {
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = parseSample(line);
    const f = owner(s.name);
    assert.ok(f?.type, `sample ${s.name} belongs to a family with a TYPE`);
    assert.ok(f.help, `family ${f.name} has a HELP`);
    if (f.type === 'counter') assert.ok(s.value >= 0, `counter ${s.name} is not negative`);
    f.series.push(s);
  }
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    const groups = new Map<string, Series[]>();
    for (const s of f.series) {
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const [key, series] of groups) {
      const buckets = series.filter((s) => s.name.endsWith('_bucket'));
      const bounds = buckets.map((b) => parseValue(b.labels.le ?? '', b.name));
      assert.ok(bounds.length && bounds.at(-1) === Infinity, `histogram ${f.name}${key} ends with le="+Inf"`);
      for (let i = 1; i < buckets.length; i++) {
        assert.ok(bounds[i]! > bounds[i - 1]!, `histogram ${f.name}${key}: ascending bounds`);
        assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `histogram ${f.name}${key}: cumulative counts`);
      }
      const count = series.find((s) => s.name === `${f.name}_count`);
      assert.equal(count?.value, buckets.at(-1)!.value, `histogram ${f.name}${key}: _count equals the +Inf bucket`);
      assert.ok(
        series.some((s) => s.name === `${f.name}_sum`),
        `histogram ${f.name}${key} has a _sum`,
      );
    }
  }
  return families;
}

/** The value of one series by its exposed name and exact labels; undefined when absent. */
export function sample(families: Map<string, Family>, name: string, labels: Record<string, string>): number | undefined {
  const same = (have: Record<string, string>) =>
    Object.keys(have).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => have[k] === v);
  for (const f of families.values()) {
    const found = f.series.find((s) => s.name === name && same(s.labels));
    if (found) return found.value;
  }
  return undefined;
}
