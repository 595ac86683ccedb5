// Exec and attach over WebSocket with the Kubernetes channel protocols
// (v5/v4/v3/v2 channel.k8s.io and their base64 forms): each message starts
// with its channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds
// channel 255 for "this channel is closed" (the client closing stdin).
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { StreamIO, TerminalSize } from './backend.ts';
import { resizeDecoder } from './resize.ts';

export const WEBSOCKET_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'v3.channel.k8s.io',
  'v3.base64.channel.k8s.io',
  'v2.channel.k8s.io',
  'v2.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
];

const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 };
const HIGH_WATER = 4 * 1024 * 1024;

/** Encodes one message of a channel for the negotiated protocol. */
export function encodeMessage(protocol: string, channel: number, data: Buffer): Buffer | string {
  if (protocol.includes('base64')) return String.fromCharCode(48 + channel) + data.toString('base64');
  return Buffer.concat([Buffer.from([channel]), data]);
}

/** Decodes a client message into its channel and payload. */
export function decodeMessage(protocol: string, message: Buffer | string): { channel: number; data: Buffer } {
  if (protocol.includes('base64')) {
    const text = message.toString();
    return { channel: text.charCodeAt(0) - 48, data: Buffer.from(text.slice(1), 'base64') };
  }
  const buf = Buffer.isBuffer(message) ? message : Buffer.from(message);
  return { channel: buf[0]!, data: buf.subarray(1) };
}

export interface WebSocketSession {
  io: StreamIO;
  /** Sends the error channel payload (if any), then closes normally. */
  finish(errorPayload: Buffer | undefined): Promise<void>;
}

export function webSocketSession(
  ws: WebSocket,
  protocol: string,
  options: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
): WebSocketSession {
  const stdin = options.stdin ? new PassThrough() : undefined;
  const listeners: Array<(size: TerminalSize) => void> = [];
  let last: TerminalSize | undefined;
  const onResize = resizeDecoder((size) => {
    last = size;
    listeners.forEach((l) => l(size));
  });
  const output = (channel: number) =>
    new Writable({
      write(chunk: Buffer, _enc, callback) {
        if (ws.readyState !== ws.OPEN) return callback();
        ws.send(encodeMessage(protocol, channel, chunk), (err) => {
          if (err) return callback();
          // Backpressure: hold the writer while the client lags behind.
          if (ws.bufferedAmount < HIGH_WATER) return callback();
          const wait = setInterval(() => {
            if (ws.bufferedAmount < HIGH_WATER || ws.readyState !== ws.OPEN) {
              clearInterval(wait);
              callback();
            }
          }, 10);
        });
      },
    });
  ws.on('message', (message: Buffer, isBinary: boolean) => {
    const { channel, data } = decodeMessage(protocol, isBinary ? message : message.toString());
    if (channel === CHANNEL.stdin) stdin?.write(data);
    else if (channel === CHANNEL.resize) onResize(data);
    else if (channel === CHANNEL.close && data[0] === CHANNEL.stdin) stdin?.end();
  });
  ws.on('close', () => stdin?.end());
  return {
    io: {
      stdin,
      stdout: options.stdout ? output(CHANNEL.stdout) : undefined,
      stderr: options.stderr && !options.tty ? output(CHANNEL.stderr) : undefined,
      tty: options.tty,
      // A size sent before the process started still applies to it.
      onResize: (listener) => {
        listeners.push(listener);
        if (last) listener(last);
      },
    },
    finish: async (payload) => {
      if (ws.readyState !== ws.OPEN) return;
      if (payload) await new Promise<void>((resolve) => ws.send(encodeMessage(protocol, CHANNEL.error, payload), () => resolve()));
      ws.close(1000);
    },
  };
}
