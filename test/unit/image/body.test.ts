// Bounded reads of registry answers, the quoting of their error reasons and
// the reading of Retry-After.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Response } from 'undici';
import { TooLargeError, errorReason, quote, readBody } from '../../../src/image/body.ts';
import { retryAfter } from '../../../src/image/registry.ts';

/** A response whose body yields `chunks` chunks of `size` bytes, counting what was pulled from it. */
function streamed(chunks: number, size: number, headers: Record<string, string> = {}) {
  const state = { pulled: 0, cancelled: false };
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (state.pulled >= chunks) return controller.close();
        state.pulled++;
        controller.enqueue(new Uint8Array(size).fill(0x61));
      },
      cancel() {
        state.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { res: new Response(body, { headers }), state };
}

test('a body within the limit is read whole, each chunk reported', async () => {
  const { res } = streamed(4, 1000);
  let chunks = 0;
  const body = await readBody(res, 4000, 'manifest x', () => chunks++);
  assert.equal(body.length, 4000);
  assert.equal(chunks, 4);
});

test('a body over the limit stops being read and fails naming it', async () => {
  const { res, state } = streamed(Infinity, 64 * 1024);
  await assert.rejects(
    readBody(res, 1024 * 1024, 'manifest v1 from r.example'),
    (e: any) => e instanceof TooLargeError && e.message === 'manifest v1 from r.example is larger than 1 MiB',
  );
  assert.ok(state.pulled <= 18, `${state.pulled} chunks read`);
  assert.ok(state.cancelled);
});

test('a declared length over the limit fails before any byte is read', async () => {
  const { res, state } = streamed(Infinity, 1024, { 'content-length': String(2 ** 40) });
  await assert.rejects(readBody(res, 4096, 'token response'), /token response is larger than 4 KiB \(it declares 1099511627776 bytes\)/);
  assert.ok(state.pulled <= 1);
});

test('an error reason comes from the distribution error document, shortened and on one line', async () => {
  const doc = JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }, { code: 'TOOMANYREQUESTS' }] });
  assert.equal(await errorReason(new Response(doc)), 'DENIED: requested access to the resource is denied; TOOMANYREQUESTS');
  assert.equal(await errorReason(new Response('line one\r\n\u0000line two')), 'line one line two');
  const long = await errorReason(new Response('x'.repeat(5000)));
  assert.equal(long.length, 201);
  const { res, state } = streamed(Infinity, 16 * 1024);
  assert.equal((await errorReason(res)).length, 201);
  assert.ok(state.pulled <= 5 && state.cancelled, 'an endless error body is read no further than 64 KiB');
  assert.equal(quote('a\tb'), 'a b');
});

test('Retry-After is read as seconds or as a date', () => {
  assert.equal(retryAfter('3'), 3000);
  assert.equal(retryAfter(null), undefined);
  assert.equal(retryAfter('soon'), undefined);
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(retryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000);
  assert.equal(retryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now), 0);
});
