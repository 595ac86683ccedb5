// oom_score_adj limits: without CAP_SYS_RESOURCE a process may not go below
// its parent's score, so requested values are raised to the daemon's own
// rather than failing every pod and container.
import { readFileSync } from 'node:fs';
import { clampOom } from '../oci/oom.ts';

let own: number | undefined;
let capable: boolean | undefined;

function ownScore(): number {
  own ??= Number.parseInt(readFileSync('/proc/self/oom_score_adj', 'utf8').trim(), 10) || 0;
  return own;
}

/** Whether the daemon holds CAP_SYS_RESOURCE (bit 24 of the effective set). */
export function hasCapSysResource(): boolean {
  if (capable === undefined) {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapEff:'));
    capable = line ? (BigInt(`0x${line.split(/\s+/)[1]}`) & (1n << 24n)) !== 0n : false;
  }
  return capable;
}

let restrictSetting = true;

/** Set from the [pod] restrict_oom_score_adj config key. */
export function setRestrictOomScoreAdj(value: boolean): void {
  restrictSetting = value;
}

/** An oom_score_adj the daemon can actually give a process it starts. */
export function clampOomScoreAdj(value: number): number {
  return clampOom(value, ownScore(), restrictSetting || !hasCapSysResource());
}
