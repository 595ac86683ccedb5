// What the streaming server needs from the rest of tscri: running a command in
// a container, attaching to its stdio, and dialing a port in a pod's network
// namespace. The container and network services implement it.
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

export interface StreamIO {
  /** Present when the client sends stdin; ends when the client closes stdin. */
  stdin?: Readable;
  stdout?: Writable;
  /** Absent when tty is set: a terminal merges stderr into stdout. */
  stderr?: Writable;
  tty: boolean;
  /** Registers a callback for terminal size changes sent by the client. */
  onResize(listener: (size: TerminalSize) => void): void;
}

export interface StreamBackend {
  /** Runs cmd in the container; resolves with its exit code. Aborting kills the process. */
  exec(containerId: string, cmd: string[], io: StreamIO, signal: AbortSignal): Promise<number>;
  /** Attaches to the container's main process; resolves when the client detaches or the container exits. */
  attach(containerId: string, io: StreamIO, signal: AbortSignal): Promise<void>;
  /** Opens a TCP connection to localhost:port inside the pod's network namespace. */
  portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex>;
}
