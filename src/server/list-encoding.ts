// The answers of ListContainers and ListPodSandbox, encoded from bytes kept
// per listed object. Those services hand out one frozen object per
// container or pod and state, made again when it changes; a repeated field
// on the wire is each element's own tag, length and bytes one after
// another, so the answer is the kept encodings of its elements joined.
import type * as grpc from '@grpc/grpc-js';

type Serialize = (value: unknown) => Buffer;

/** A serializer of a message whose only field is the repeated message field `field`. */
export function repeatedFieldSerializer(serialize: Serialize, field: string): Serialize {
  const kept = new WeakMap<object, Buffer>();
  const one = (item: unknown): Buffer => {
    if (typeof item !== 'object' || item === null || !Object.isFrozen(item)) return serialize({ [field]: [item] });
    let bytes = kept.get(item);
    if (!bytes) {
      bytes = serialize({ [field]: [item] });
      kept.set(item, bytes);
    }
    return bytes;
  };
  return (value) => {
    const list = (value as Record<string, unknown> | null)?.[field];
    if (!Array.isArray(list) || Object.keys(value as object).length !== 1) return serialize(value);
    if (list.length === 1) return one(list[0]);
    return Buffer.concat(list.map(one));
  };
}

const LISTS: Record<string, string> = { ListContainers: 'containers', ListPodSandbox: 'items' };

/** The service with ListContainers' and ListPodSandbox's answers encoded from kept bytes. */
export function withListEncoding(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...service };
  for (const [rpc, field] of Object.entries(LISTS)) {
    const method = service[rpc];
    if (method) out[rpc] = { ...method, responseSerialize: repeatedFieldSerializer(method.responseSerialize as Serialize, field) };
  }
  return out as grpc.ServiceDefinition;
}
