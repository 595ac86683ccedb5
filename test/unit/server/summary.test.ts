import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from '../../../src/server/summary.ts';

test('summaries never contain credentials', () => {
  const text = summarize({ image: { image: 'r/x' }, auth: { username: 'alice', password: 's3cret', auth: 'YWxpY2U6czNjcmV0', registry_token: 'tok' } });
  for (const secret of ['alice', 's3cret', 'YWxpY2U6czNjcmV0', 'tok"']) assert.ok(!text.includes(secret), text);
  assert.ok(text.includes('r/x'));
});

test('summaries are bounded', () => {
  const text = summarize({ list: Array.from({ length: 1000 }, (_, i) => 'x'.repeat(300) + i), data: Buffer.alloc(5000) });
  assert.ok(text.length <= 2001);
});
