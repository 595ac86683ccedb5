import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { invalidArgument, quote, QUOTE_LIMIT } from '../../../src/errors.ts';
import { MESSAGE_LIMIT, toStatus } from '../../../src/server/errors.ts';

test('quote shows short inputs whole and long ones in part, with their length', () => {
  assert.equal(quote('abc'), '"abc"');
  assert.equal(quote(['a', 1]), '["a",1]');
  assert.equal(quote(undefined), 'undefined');
  const long = quote('x'.repeat(1024 * 1024));
  assert.ok(long.length < QUOTE_LIMIT + 40, long);
  assert.match(long, /^"x+"… \(1048576 characters\)$/);
  assert.match(quote({ big: 'y'.repeat(500) }), /… \(\d+ characters\)$/);
});

test('no status message is longer than the limit, whatever was thrown', () => {
  for (const err of [invalidArgument(`bad ${'z'.repeat(100_000)}`), new Error('e'.repeat(100_000)), 'w'.repeat(100_000)]) {
    const { code, details } = toStatus(err);
    assert.ok(details.length < MESSAGE_LIMIT + 80, `${details.length}`);
    assert.match(details, /message cut at 1024 of 10000\d characters/);
    assert.ok(code === status.INVALID_ARGUMENT || code === status.INTERNAL);
  }
  assert.deepEqual(toStatus(invalidArgument('short')), { code: status.INVALID_ARGUMENT, details: 'short' });
});
