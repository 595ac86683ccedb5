// ttrpc, the small RPC protocol NRI speaks: unary calls over one byte stream.
// A client numbers its streams with odd ids counting up; each call is one
// Request message and is answered by one Response message (a status and the
// result's bytes). Everything read is bounded: one message at a time, at most
// MAX_MESSAGE bytes, a limited number of calls in flight on a server; a peer
// that breaks the protocol has its connection closed, never the daemon.
import type { ByteChannel } from './mux.ts';
import { codec, type DecodeError } from './proto.ts';
import { FrameDecoder, HEADER_LENGTH, MAX_MESSAGE, MessageType, encodeHeader, type FrameHeader } from './ttrpc-frame.ts';
import type { Request, Request__Output } from '../generated/ttrpc/Request.ts';
import type { Response, Response__Output } from '../generated/ttrpc/Response.ts';

/** gRPC status codes, which ttrpc uses unchanged. */
export const Code = {
  OK: 0,
  Cancelled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

const requestCodec = codec<Request, Request__Output>('ttrpc.Request');
const responseCodec = codec<Response, Response__Output>('ttrpc.Response');

/** The peer answered with a non-OK status. */
export class TtrpcError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** The connection closed (or broke the protocol) before the call was answered. */
export class ConnectionClosedError extends Error {}

/** No answer within the call's timeout. */
export class CallTimeoutError extends Error {}

/** A message that ttrpc cannot carry. */
export class OversizedMessageError extends TtrpcError {
  readonly length: number;
  constructor(length: number) {
    super(Code.ResourceExhausted, `message of ${length} bytes exceeds ttrpc's limit of ${MAX_MESSAGE}`);
    this.length = length;
  }
}

// A Go peer reads each multiplexed frame into a 4 KiB buffer unless it is
// reading straight into a larger message buffer, so a message that does not
// fit in 4 KiB goes out as two frames: its header, then its payload.
const SMALL_MESSAGE = 4096;

function send(channel: ByteChannel, streamId: number, type: number, payload: Buffer): void {
  if (payload.length > MAX_MESSAGE) throw new OversizedMessageError(payload.length);
  const header = encodeHeader({ length: payload.length, streamId, type, flags: 0 });
  if (HEADER_LENGTH + payload.length <= SMALL_MESSAGE) {
    channel.write(Buffer.concat([header, payload]));
  } else {
    channel.write(header);
    channel.write(payload);
  }
}

interface Pending {
  resolve(payload: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Calls methods of the ttrpc server at the other end of a channel. */
export class TtrpcClient {
  private readonly channel: ByteChannel;
  private readonly pending = new Map<number, Pending>();
  private nextStreamId = 1;
  private closedWith: Error | undefined;
  private readonly closeHandlers: ((err: Error) => void)[] = [];

  constructor(channel: ByteChannel) {
    this.channel = channel;
    const decoder = new FrameDecoder({
      frame: (header, payload) => this.receive(header, payload),
      oversized: (header) => this.settle(header.streamId, new OversizedMessageError(header.length)),
    });
    channel.onData((chunk) => decoder.push(chunk));
    channel.onClose((err) => this.closed(err ?? new ConnectionClosedError('connection closed')));
  }

  /**
   * Calls service/method with an encoded request; resolves with the encoded
   * result. The server is told timeoutMs; the answer is awaited graceMs
   * longer, so one sent at the server's own deadline (counted from when it
   * received the call) is not lost to the time in transit.
   */
  call(service: string, method: string, payload: Buffer, timeoutMs: number, graceMs = 0): Promise<Buffer> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.nextStreamId > 0xffffffff) return Promise.reject(new ConnectionClosedError('ttrpc stream ids exhausted'));
    const streamId = this.nextStreamId;
    let message: Buffer;
    try {
      message = requestCodec.encode({ service, method, payload, timeout_nano: Math.round(timeoutMs * 1e6) });
      if (message.length > MAX_MESSAGE) throw new OversizedMessageError(message.length);
    } catch (err) {
      return Promise.reject(err);
    }
    this.nextStreamId += 2;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        reject(new CallTimeoutError(`${method} got no answer within ${timeoutMs} ms`));
      }, timeoutMs + graceMs);
      this.pending.set(streamId, { resolve, reject, timer });
      send(this.channel, streamId, MessageType.Request, message);
    });
  }

  onClose(handler: (err: Error) => void): void {
    if (this.closedWith) handler(this.closedWith);
    else this.closeHandlers.push(handler);
  }

  close(): void {
    this.channel.close();
  }

  private receive(header: FrameHeader, payload: Buffer): void {
    if (header.type !== MessageType.Response && header.type !== MessageType.Data) {
      this.protocolError(`message of unknown type ${header.type}`);
      return;
    }
    // Answers to calls that timed out, or that were never made, are dropped.
    if (!this.pending.has(header.streamId)) return;
    if (header.type === MessageType.Data) {
      this.settle(header.streamId, new TtrpcError(Code.Internal, 'streamed answer to a unary call'));
      return;
    }
    let response: Response__Output;
    try {
      response = responseCodec.decode(payload);
    } catch (err) {
      this.settle(header.streamId, new TtrpcError(Code.Internal, (err as DecodeError).message));
      return;
    }
    const code = response.status?.code ?? Code.OK;
    if (code !== Code.OK) this.settle(header.streamId, new TtrpcError(code, response.status?.message ?? ''));
    else this.settle(header.streamId, undefined, response.payload);
  }

  private settle(streamId: number, err: Error | undefined, payload?: Buffer): void {
    const call = this.pending.get(streamId);
    if (!call) return;
    this.pending.delete(streamId);
    clearTimeout(call.timer);
    if (err) call.reject(err);
    else call.resolve(payload ?? Buffer.alloc(0));
  }

  private protocolError(message: string): void {
    this.closed(new ConnectionClosedError(`ttrpc protocol error: ${message}`));
    this.channel.close();
  }

  private closed(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(err);
      this.pending.delete(id);
    }
    for (const handler of this.closeHandlers.splice(0)) handler(err);
  }
}

export interface CallContext {
  /** Aborted when the caller's timeout passes or the connection closes. */
  signal: AbortSignal;
}

export type Handler = (payload: Buffer, context: CallContext) => Promise<Buffer>;

export interface ServerOptions {
  /** Calls handled at once; more are answered RESOURCE_EXHAUSTED. */
  maxInFlight?: number;
}

/** Serves ttrpc methods to the client at the other end of a channel. */
export class TtrpcServer {
  private readonly channel: ByteChannel;
  private readonly handlers: Map<string, Handler>;
  private readonly maxInFlight: number;
  private readonly inFlight = new Map<number, AbortController>();
  private lastStreamId = 0;
  private closed = false;

  /** handlers is keyed by "service/method". */
  constructor(channel: ByteChannel, handlers: Map<string, Handler>, options: ServerOptions = {}) {
    this.channel = channel;
    this.handlers = handlers;
    this.maxInFlight = options.maxInFlight ?? 16;
    const decoder = new FrameDecoder({
      frame: (header, payload) => this.receive(header, payload),
      oversized: (header) => this.answer(header.streamId, Code.ResourceExhausted, `message of ${header.length} bytes exceeds ttrpc's limit of ${MAX_MESSAGE}`),
    });
    channel.onData((chunk) => decoder.push(chunk));
    channel.onClose(() => this.stop());
  }

  private receive(header: FrameHeader, payload: Buffer): void {
    if (header.type === MessageType.Data) {
      this.answer(header.streamId, Code.InvalidArgument, 'streams are not supported');
      return;
    }
    if (header.type !== MessageType.Request) {
      this.stop();
      this.channel.close();
      return;
    }
    if (header.streamId % 2 !== 1) {
      this.answer(header.streamId, Code.InvalidArgument, 'stream ids of client calls must be odd');
      return;
    }
    if (header.streamId <= this.lastStreamId) {
      this.answer(header.streamId, Code.InvalidArgument, 'stream ids must increase');
      return;
    }
    this.lastStreamId = header.streamId;
    let request: Request__Output;
    try {
      request = requestCodec.decode(payload);
    } catch (err) {
      this.answer(header.streamId, Code.InvalidArgument, (err as DecodeError).message);
      return;
    }
    const handler = this.handlers.get(`${request.service}/${request.method}`);
    if (!handler) {
      this.answer(header.streamId, Code.Unimplemented, `method ${request.service}/${request.method} is not implemented`);
      return;
    }
    if (this.inFlight.size >= this.maxInFlight) {
      this.answer(header.streamId, Code.ResourceExhausted, `more than ${this.maxInFlight} calls in flight`);
      return;
    }
    void this.run(header.streamId, request, handler);
  }

  private async run(streamId: number, request: Request__Output, handler: Handler): Promise<void> {
    const controller = new AbortController();
    this.inFlight.set(streamId, controller);
    const timeoutMs = request.timeout_nano > 0 ? request.timeout_nano / 1e6 : 0;
    const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(new CallTimeoutError('deadline exceeded')), Math.min(timeoutMs, 2 ** 31 - 1)) : undefined;
    try {
      const result = await handler(request.payload, { signal: controller.signal });
      this.reply(streamId, { status: { code: Code.OK }, payload: result });
    } catch (err) {
      const code = err instanceof TtrpcError ? err.code : err instanceof CallTimeoutError ? Code.DeadlineExceeded : Code.Unknown;
      this.answer(streamId, code, (err as Error).message ?? String(err));
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(streamId);
    }
  }

  private answer(streamId: number, code: number, message: string): void {
    this.reply(streamId, { status: { code, message } });
  }

  private reply(streamId: number, response: Response): void {
    if (this.closed) return;
    let message = responseCodec.encode(response);
    if (message.length > MAX_MESSAGE) {
      message = responseCodec.encode({ status: { code: Code.ResourceExhausted, message: `answer of ${message.length} bytes exceeds ttrpc's limit` } });
    }
    send(this.channel, streamId, MessageType.Response, message);
  }

  private stop(): void {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.inFlight.values()) controller.abort(new ConnectionClosedError('connection closed'));
  }
}
