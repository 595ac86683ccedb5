// The shape of an RPC handler file under src/server/rpc/: one default export made
// with unary() or serverStream(), named after its RPC and listed in the table of
// src/server/rpc/table.ts, which the compiler checks against the generated services.
import type { Context } from './context.ts';

export interface CallInfo {
  /** Aborted when the client cancels or the call's deadline passes. */
  signal: AbortSignal;
  /** Epoch milliseconds of the client's deadline, if it set one. */
  deadline?: number;
}

export type UnaryFn<Req, Res> = (ctx: Context, req: Req, call: CallInfo) => Promise<Res>;
export type StreamFn<Req, Res> = (ctx: Context, req: Req, send: (res: Res) => Promise<void>, call: CallInfo) => Promise<void>;

export interface UnaryHandler<Req, Res> {
  kind: 'unary';
  fn: UnaryFn<Req, Res>;
}

export interface StreamHandler<Req, Res> {
  kind: 'stream';
  fn: StreamFn<Req, Res>;
}

/** Any handler, as the server's wrapper sees it once the table has been type-checked. */
export type Handler = UnaryHandler<never, unknown> | StreamHandler<never, unknown>;

export function unary<Req, Res>(fn: UnaryFn<Req, Res>): UnaryHandler<Req, Res> {
  return { kind: 'unary', fn };
}

export function serverStream<Req, Res>(fn: StreamFn<Req, Res>): StreamHandler<Req, Res> {
  return { kind: 'stream', fn };
}
