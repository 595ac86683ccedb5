// ListMetricDescriptors: the metrics ListPodSandboxMetrics reports, with their help text.
import type { ListMetricDescriptorsRequest__Output } from '../../generated/runtime/v1/ListMetricDescriptorsRequest.ts';
import type { ListMetricDescriptorsResponse } from '../../generated/runtime/v1/ListMetricDescriptorsResponse.ts';
import { unary } from '../handler.ts';

export default unary<ListMetricDescriptorsRequest__Output, ListMetricDescriptorsResponse>(async (ctx) => ({ descriptors: ctx.stats.descriptors() }));
