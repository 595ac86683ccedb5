// The object a CRI call is about, for its log lines: a container (id, name,
// podId), a pod (id, name, namespace) or an image (id, name = the reference).
// Looked up when the call arrives (a removed object is gone afterwards) and
// completed from the response (the id a create or pull made).
import type { Context } from './context.ts';

export interface Subject {
  id?: string;
  name?: string;
  namespace?: string;
  podId?: string;
}

const MAX = 256;
const clip = (value: unknown): string | undefined => (typeof value === 'string' && value ? value.slice(0, MAX) : undefined);

/** A field of a request or response object, or undefined. */
const at = (value: unknown, key: string): unknown => (value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

function compact(subject: Subject): Subject {
  return Object.fromEntries(Object.entries(subject).filter(([, v]) => v !== undefined)) as Subject;
}

/** What the request names. Never throws: a log line must not fail a call. */
export function subjectOf(ctx: Context, request: unknown): Subject {
  try {
    if (!request || typeof request !== 'object') return {};
    const config = at(request, 'config');
    const metadata = at(config, 'metadata');
    const containerId = clip(at(request, 'container_id'));
    if (containerId) {
      const r = ctx.containers.find(containerId);
      return compact({ id: r?.id ?? containerId, name: clip(r?.config.metadata?.name), podId: r?.sandboxId });
    }
    if (metadata && at(request, 'pod_sandbox_id') !== undefined) {
      // CreateContainer: the container's name now, its id from the response.
      return compact({ name: clip(at(metadata, 'name')), podId: clip(at(request, 'pod_sandbox_id')) });
    }
    const podId = clip(at(request, 'pod_sandbox_id'));
    if (podId) {
      const r = ctx.sandboxes.get(podId);
      return compact({ id: r?.id ?? podId, name: clip(r?.config.metadata?.name), namespace: clip(r?.config.metadata?.namespace) });
    }
    if (metadata) {
      // RunPodSandbox.
      return compact({ name: clip(at(metadata, 'name')), namespace: clip(at(metadata, 'namespace')) });
    }
    const image = clip(at(at(request, 'image'), 'image'));
    if (image) return compact({ id: ctx.images.find(image)?.id, name: image });
  } catch {
    // A lookup that fails leaves the line without the subject.
  }
  return {};
}

/** The subject with what the response adds (the id of what was made). */
export function withResponse(subject: Subject, response: unknown): Subject {
  if (!response || typeof response !== 'object') return subject;
  const made = clip(at(response, 'container_id')) ?? clip(at(response, 'pod_sandbox_id')) ?? clip(at(response, 'image_ref'));
  return made ? { ...subject, id: made } : subject;
}
