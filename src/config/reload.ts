// Applying a re-read configuration (SIGHUP) to the running daemon: only the
// parts that can change safely while pods run are taken over.
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './config.ts';

/** Keys taken over on reload; anything else needs a restart. */
export const RELOADABLE = ['log_level', 'registry', 'cni', 'image'] as const;

export interface ReloadResult {
  applied: string[];
  /** Keys that differ but only take effect after a restart. */
  needRestart: string[];
}

/** Copies the reloadable keys of next into current (in place: services hold current). */
export function applyReload(current: Config, next: Config): ReloadResult {
  const result: ReloadResult = { applied: [], needRestart: [] };
  for (const key of Object.keys(next) as (keyof Config)[]) {
    if (isDeepStrictEqual(current[key], next[key])) continue;
    if ((RELOADABLE as readonly string[]).includes(key)) {
      (current as unknown as Record<string, unknown>)[key] = next[key];
      result.applied.push(key);
    } else {
      result.needRestart.push(key);
    }
  }
  return result;
}
