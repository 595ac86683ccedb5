// The stdio of an exec or attach session as the streaming server hands it over, and
// what the container side offers it: running a command, attaching to the main process.
import type { Readable, Writable } from 'node:stream';

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

export interface ContainerStreams {
  /** Runs cmd in the container; resolves with its exit code. Aborting kills the process. */
  exec(containerId: string, cmd: string[], io: StreamIO, signal: AbortSignal): Promise<number>;
  /** Attaches to the container's main process; resolves when the client detaches or the container exits. */
  attach(containerId: string, io: StreamIO, signal: AbortSignal): Promise<void>;
}
