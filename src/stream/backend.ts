// What the streaming server needs from the rest of tscri: running a command in
// a container, attaching to its stdio, and dialing a port in a pod's network
// namespace. The container and network services implement it.
import type { Duplex } from 'node:stream';
import type { ContainerStreams } from '../container/stream-io.ts';

export type { StreamIO, TerminalSize } from '../container/stream-io.ts';

export interface StreamBackend extends ContainerStreams {
  /** Opens a TCP connection to localhost:port inside the pod's network namespace. */
  portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex>;
}
