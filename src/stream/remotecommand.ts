// Exec and attach over SPDY (remotecommand protocols channel.k8s.io through
// v5.channel.k8s.io): the client opens one stream per channel (error, stdin,
// stdout, stderr, resize); tscri accepts them, runs the command against the
// backend and reports the result on the error stream.
import type { Writable } from 'node:stream';
import type { SpdySession, SpdyStream } from './spdy/session.ts';
import type { StreamIO, TerminalSize } from './backend.ts';
import { resizeDecoder } from './resize.ts';

export const REMOTECOMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];

const STREAM_CREATION_TIMEOUT_MS = 30_000;

export interface CommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** The stream types a client of this protocol version opens for these options. */
export function expectedStreams(protocol: string, options: CommandOptions): string[] {
  const types = ['error'];
  if (options.stdin) types.push('stdin');
  if (options.stdout) types.push('stdout');
  if (options.stderr && !options.tty) types.push('stderr');
  if (options.tty && protocol !== 'channel.k8s.io' && protocol !== 'v2.channel.k8s.io') types.push('resize');
  return types;
}

/** Waits for the client's streams, accepting each; rejects after the creation timeout. */
export function collectStreams(session: SpdySession, expected: string[]): Promise<Map<string, SpdyStream>> {
  return new Promise((resolve, reject) => {
    const streams = new Map<string, SpdyStream>();
    const timer = setTimeout(
      () => finish(new Error(`timed out waiting for the client's streams (got ${[...streams.keys()].join(', ') || 'none'}, need ${expected.join(', ')})`)),
      STREAM_CREATION_TIMEOUT_MS,
    );
    const onStream = (stream: SpdyStream) => {
      const type = stream.headers.streamtype ?? '';
      void stream.reply().catch(() => undefined);
      if (!expected.includes(type) || streams.has(type)) {
        stream.reset();
        return;
      }
      streams.set(type, stream);
      if (expected.every((t) => streams.has(t))) finish();
    };
    const onClose = () => finish(new Error('the client closed the connection before opening its streams'));
    const finish = (err?: Error) => {
      clearTimeout(timer);
      session.off('stream', onStream);
      session.off('close', onClose);
      if (err) reject(err);
      else resolve(streams);
    };
    session.on('stream', onStream);
    session.on('close', onClose);
  });
}

/** The StreamIO for the backend, from the accepted streams. */
export function streamIO(streams: Map<string, SpdyStream>, tty: boolean): StreamIO {
  const listeners: Array<(size: TerminalSize) => void> = [];
  let last: TerminalSize | undefined;
  const resize = streams.get('resize');
  if (resize) {
    resize.on(
      'data',
      resizeDecoder((size) => {
        last = size;
        listeners.forEach((l) => l(size));
      }),
    );
  }
  return {
    stdin: streams.get('stdin'),
    stdout: streams.get('stdout'),
    stderr: tty ? undefined : streams.get('stderr'),
    tty,
    // A size sent before the process started still applies to it.
    onResize: (listener) => {
      listeners.push(listener);
      if (last) listener(last);
    },
  };
}

/** Ends a writable and waits until its last frame went out. */
export function endStream(stream: Writable | undefined): Promise<void> {
  if (!stream || stream.writableFinished || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('finish', resolve);
    stream.once('close', resolve);
    stream.once('error', resolve);
    stream.end();
  });
}
