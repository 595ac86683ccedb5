// ListPodSandboxMetrics: per-pod and per-container metrics, the same numbers as the stats RPCs.
import type { ListPodSandboxMetricsRequest__Output } from '../../generated/runtime/v1/ListPodSandboxMetricsRequest.ts';
import type { ListPodSandboxMetricsResponse } from '../../generated/runtime/v1/ListPodSandboxMetricsResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListPodSandboxMetricsRequest__Output, ListPodSandboxMetricsResponse>(async (ctx) => ({ pod_metrics: await ctx.stats.podMetrics() }));
