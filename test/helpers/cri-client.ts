// A CRI gRPC client for tests: every RuntimeService and ImageService RPC as
// a promise (unary) or an array of messages (server-streaming).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO_FILE = fileURLToPath(new URL('../../proto/api.proto', import.meta.url));

export interface CallOptions {
  /** Milliseconds until the call's deadline. */
  timeoutMs?: number;
}

export type CriCall = (rpc: string, request?: object, options?: CallOptions) => Promise<any>;

export interface CriClient {
  call: CriCall;
  close(): void;
}

export function criClient(socket: string): CriClient {
  const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const proto = grpc.loadPackageDefinition(definition) as any;
  const address = `unix://${socket}`;
  const runtime = new proto.runtime.v1.RuntimeService(address, grpc.credentials.createInsecure());
  const image = new proto.runtime.v1.ImageService(address, grpc.credentials.createInsecure());
  const runtimeRpcs = definition['runtime.v1.RuntimeService'] as grpc.ServiceDefinition;
  const call: CriCall = (rpc, request = {}, options = {}) => {
    const client = rpc in runtimeRpcs ? runtime : image;
    const method = (client as any)[rpc];
    if (!method) throw new Error(`no RPC named ${rpc}`);
    const deadline = new Date(Date.now() + (options.timeoutMs ?? 120_000));
    const isStream = ((rpc in runtimeRpcs ? runtimeRpcs : (definition['runtime.v1.ImageService'] as grpc.ServiceDefinition))[rpc] as any).responseStream;
    return new Promise((resolve, reject) => {
      if (isStream) {
        const items: unknown[] = [];
        const stream = method.call(client, request, { deadline });
        stream.on('data', (item: unknown) => items.push(item));
        stream.on('error', reject);
        stream.on('end', () => resolve(items));
        return;
      }
      method.call(client, request, { deadline }, (err: Error | null, response: unknown) => (err ? reject(err) : resolve(response)));
    });
  };
  return {
    call,
    close() {
      runtime.close();
      image.close();
    },
  };
}

/**
 * An open server stream (GetContainerEvents never ends on its own): messages
 * arrive through `next()`; `close()` cancels the call.
 */
export function criStream(socket: string, rpc: string, request: object = {}): { next(timeoutMs?: number): Promise<any>; close(): void } {
  const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const proto = grpc.loadPackageDefinition(definition) as any;
  const client = new proto.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
  const stream = client[rpc](request);
  const queue: any[] = [];
  const waiters: Array<(item: any) => void> = [];
  let failure: Error | undefined;
  stream.on('data', (item: unknown) => (waiters.length ? waiters.shift()!(item) : queue.push(item)));
  stream.on('error', (err: Error) => {
    failure = err;
  });
  return {
    next(timeoutMs = 30_000) {
      if (queue.length) return Promise.resolve(queue.shift());
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${rpc} message within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((item) => {
          clearTimeout(timer);
          resolve(item);
        });
      });
    },
    close() {
      stream.cancel();
      client.close();
    },
  };
}
