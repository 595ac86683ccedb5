// ListPodSandbox filters: id (full or prefix), state and label selector.
import type { PodSandboxFilter__Output } from '../generated/runtime/v1/PodSandboxFilter.ts';

export interface Filterable {
  id: string;
  state: string;
  labels: Record<string, string>;
}

/** Every key=value of the selector is a label of the object. */
export function matchesLabels(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

export function matchesFilter(item: Filterable, filter: PodSandboxFilter__Output | null | undefined): boolean {
  if (!filter) return true;
  if (filter.id && !item.id.startsWith(filter.id)) return false;
  if (filter.state && item.state !== filter.state.state) return false;
  return matchesLabels(item.labels, filter.label_selector);
}

export function filterItems<T extends Filterable>(items: T[], filter: PodSandboxFilter__Output | null | undefined): T[] {
  return items.filter((i) => matchesFilter(i, filter));
}
