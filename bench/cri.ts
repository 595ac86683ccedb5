// The benchmark's CRI client: unary calls as promises, and the
// GetContainerEvents stream as a callback per event.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO_FILE = fileURLToPath(new URL('../proto/api.proto', import.meta.url));
const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as any;
const runtimeRpcs = definition['runtime.v1.RuntimeService'] as grpc.ServiceDefinition;

export type Call = (rpc: string, request?: object, timeoutMs?: number) => Promise<any>;

export interface ContainerEvent {
  container_id: string;
  container_event_type: string;
}

export interface Client {
  call: Call;
  /** Subscribes to GetContainerEvents; returns the unsubscribe function. */
  events(onEvent: (e: ContainerEvent) => void): () => void;
  close(): void;
}

export function client(socket: string): Client {
  const address = `unix://${socket}`;
  const runtime = new proto.runtime.v1.RuntimeService(address, grpc.credentials.createInsecure());
  const image = new proto.runtime.v1.ImageService(address, grpc.credentials.createInsecure());
  const call: Call = (rpc, request = {}, timeoutMs = 120_000) => {
    const c = rpc in runtimeRpcs ? runtime : image;
    return new Promise((resolve, reject) =>
      c[rpc](request, { deadline: new Date(Date.now() + timeoutMs) }, (err: Error | null, res: unknown) =>
        err ? reject(new Error(`${rpc}: ${err.message}`)) : resolve(res),
      ),
    );
  };
  return {
    call,
    events(onEvent) {
      const stream = runtime.GetContainerEvents({});
      stream.on('data', onEvent);
      stream.on('error', () => undefined);
      return () => stream.cancel();
    },
    close() {
      runtime.close();
      image.close();
    },
  };
}
