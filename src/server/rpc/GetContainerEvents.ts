// GetContainerEvents: a stream of container lifecycle events with the pod's
// status and its containers' statuses, for kubelet's evented PLEG.
import type { GetEventsRequest__Output } from '../../generated/runtime/v1/GetEventsRequest.ts';
import type { ContainerEventResponse } from '../../generated/runtime/v1/ContainerEventResponse.ts';
import { serverStream } from '../handler.ts';
import { resourceExhausted } from '../../errors.ts';
import type { Context } from '../context.ts';
import type { LifecycleEvent } from '../../container/events.ts';

async function toResponse(ctx: Context, event: LifecycleEvent): Promise<ContainerEventResponse> {
  const pod = await ctx.sandboxes.status(event.sandboxId, false).catch(() => undefined);
  return {
    container_id: event.containerId,
    container_event_type: event.type,
    created_at: event.createdAt,
    pod_sandbox_status: pod?.status ?? null,
    containers_statuses: pod?.containers_statuses ?? (await ctx.containers.statuses(event.sandboxId)),
  };
}

export default serverStream<GetEventsRequest__Output, ContainerEventResponse>(async (ctx, _req, send, call) => {
  const subscription = ctx.containers.events.subscribe();
  const stop = () => ctx.containers.events.unsubscribe(subscription);
  call.signal.addEventListener('abort', stop, { once: true });
  try {
    for (let event = await subscription.next(); event; event = await subscription.next()) {
      await send(await toResponse(ctx, event));
    }
    if (subscription.overflowed) throw resourceExhausted('the event stream fell too far behind and was closed; subscribe again and relist');
  } finally {
    stop();
    call.signal.removeEventListener('abort', stop);
  }
});
