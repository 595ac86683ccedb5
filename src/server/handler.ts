// The shape of an RPC handler file under src/server/rpc/: one default export
// made with unary() or serverStream(); the file name is the RPC's name.
import type { Context } from './context.ts';

export interface CallInfo {
  /** Aborted when the client cancels or the call's deadline passes. */
  signal: AbortSignal;
  /** Epoch milliseconds of the client's deadline, if it set one. */
  deadline?: number;
}

export type UnaryFn<Req, Res> = (ctx: Context, req: Req, call: CallInfo) => Promise<Res>;
export type StreamFn<Req, Res> = (
  ctx: Context,
  req: Req,
  send: (res: Res) => Promise<void>,
  call: CallInfo,
) => Promise<void>;

export type Handler =
  | { kind: 'unary'; fn: UnaryFn<any, any> }
  | { kind: 'stream'; fn: StreamFn<any, any> };

export function unary<Req, Res>(fn: UnaryFn<Req, Res>): Handler {
  return { kind: 'unary', fn };
}

export function serverStream<Req, Res>(fn: StreamFn<Req, Res>): Handler {
  return { kind: 'stream', fn };
}
