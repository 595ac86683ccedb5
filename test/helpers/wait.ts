// Waiting, bounded, for what the daemon finishes after its answer (say, the
// disk cleanup of RemoveContainer), so tests check the effect without a sleep.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

/** Polls check every 25 ms until it holds; fails with what after timeoutMs. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until path no longer exists. */
export async function waitGone(path: string, what = `${path} is removed`): Promise<void> {
  await waitUntil(() => !existsSync(path), what);
}
