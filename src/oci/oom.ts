// The oom_score_adj a spec may carry.

/** Within [-1000, 1000] and, when restricted (no CAP_SYS_RESOURCE), not below the floor. */
export function clampOom(value: number, floor: number, restrict: boolean): number {
  const bounded = Math.max(-1000, Math.min(1000, Math.trunc(value)));
  return restrict ? Math.max(bounded, floor) : bounded;
}
