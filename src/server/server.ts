// The gRPC server: loads the CRI proto, binds RuntimeService and
// ImageService on the unix socket, and wraps every handler with logging,
// deadline/cancellation signals and error-to-status mapping. RPCs the table
// (rpc/table.ts) marks null answer UNIMPLEMENTED with their name.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdir, chmod, chown, rm, stat } from 'node:fs/promises';
import { createConnection, createServer, type Server as NetServer } from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageHandlers, runtimeHandlers } from './rpc/table.ts';
import type { Context } from './context.ts';
import type { CallInfo, Handler } from './handler.ts';
import { deadlineExceeded } from '../errors.ts';
import { toStatus } from './errors.ts';
import { summarize } from './summary.ts';
import { subjectOf, withResponse, type Subject } from './subject.ts';

import { withListEncoding } from './list-encoding.ts';
const PROTO_FILE = fileURLToPath(new URL('../../proto/api.proto', import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

// RPCs that kubelet calls in a loop; logged at debug so the info log stays readable.
const POLLED = /^(List|Stream|Version$|Status$|ImageStatus$|ImageFsInfo$|PodSandboxStatus$|ContainerStatus$|ContainerStats$|PodSandboxStats$|RuntimeConfig$)/;

export function loadServices(): { runtime: grpc.ServiceDefinition; image: grpc.ServiceDefinition } {
  const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
  return {
    runtime: withListEncoding(definition['runtime.v1.RuntimeService'] as grpc.ServiceDefinition),
    image: definition['runtime.v1.ImageService'] as grpc.ServiceDefinition,
  };
}

/** Every RPC's handler by name, from the type-checked table; null where tscri has none. */
export function handlerTable(): Map<string, Handler | null> {
  return new Map<string, Handler | null>([...Object.entries(runtimeHandlers), ...Object.entries(imageHandlers)]);
}

function callInfo(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): { info: CallInfo; done: () => void } {
  const controller = new AbortController();
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw.getTime() : Number.isFinite(raw) ? Number(raw) : undefined;
  let timer: NodeJS.Timeout | undefined;
  if (deadline !== undefined) {
    const abort = () => {
      const err = new Error('the client deadline was exceeded');
      err.name = 'DeadlineExceeded';
      controller.abort(err);
    };
    const left = deadline - Date.now();
    if (left <= 0) abort();
    else timer = setTimeout(abort, left);
  }
  const onCancel = () => {
    if (!controller.signal.aborted) controller.abort(new Error('the client cancelled the call'));
  };
  call.on('cancelled', onCancel);
  return {
    info: { signal: controller.signal, deadline },
    done: () => {
      if (timer) clearTimeout(timer);
      call.off('cancelled', onCancel);
    },
  };
}

function wrap(ctx: Context, rpc: string, handler: Handler | undefined): grpc.UntypedHandleCall {
  const level = POLLED.test(rpc) ? 'debug' : 'info';
  // Each line of a call names the object it is about (id, name...), looked up when the call arrived.
  const finish = (start: bigint, subject: Subject, err: unknown, response?: unknown) => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (err) {
      const { code, details } = toStatus(err);
      ctx.metrics.observe(rpc, grpc.status[code], ms / 1000);
      const logLevel = code === grpc.status.INTERNAL ? 'error' : 'warn';
      ctx.log[logLevel]({ rpc, ...subject, ms, code: grpc.status[code] }, `${rpc} failed: ${details}`);
      if (code === grpc.status.INTERNAL && err instanceof Error) ctx.log.debug({ rpc, stack: err.stack }, 'stack');
      return { code, details };
    }
    ctx.metrics.observe(rpc, 'OK', ms / 1000);
    const about = withResponse(subject, response);
    if (ctx.log.isLevelEnabled('debug')) ctx.log.debug({ rpc, ...about, ms, response: summarize(response) }, `${rpc} done`);
    else ctx.log[level]({ rpc, ...about, ms }, `${rpc} done`);
    return undefined;
  };
  const about = (request: unknown): Subject => (level === 'info' || ctx.log.isLevelEnabled('debug') ? subjectOf(ctx, request) : {});
  const logRequest = (request: unknown) => {
    if (ctx.log.isLevelEnabled('debug')) ctx.log.debug({ rpc, request: summarize(request) }, `${rpc} request`);
  };

  if (!handler) {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
      const error = { code: grpc.status.UNIMPLEMENTED, details: `${rpc} is not implemented by tscri` };
      ctx.log.warn({ rpc, code: 'UNIMPLEMENTED' }, error.details);
      if (callback) callback(error);
      else (call as unknown as grpc.ServerWritableStream<unknown, unknown>).emit('error', error);
    };
  }

  if (handler.kind === 'unary') {
    return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const start = process.hrtime.bigint();
      logRequest(call.request);
      const subject = about(call.request);
      const { info, done } = callInfo(call);
      handler.fn(ctx, call.request as never, info).then(
        (response) => {
          done();
          finish(start, subject, undefined, response);
          callback(null, response ?? {});
        },
        (err) => {
          done();
          callback(finish(start, subject, deadlineAware(err, info))!);
        },
      );
    };
  }

  return (call: grpc.ServerWritableStream<unknown, unknown>) => {
    const start = process.hrtime.bigint();
    logRequest(call.request);
    const subject = about(call.request);
    const { info, done } = callInfo(call);
    const send = (message: unknown) =>
      new Promise<void>((resolve, reject) => {
        if (info.signal.aborted) return reject(info.signal.reason);
        if (call.write(message)) resolve();
        else call.once('drain', () => resolve());
      });
    handler.fn(ctx, call.request as never, send, info).then(
      () => {
        done();
        finish(start, subject, undefined, { stream: 'ended' });
        call.end();
      },
      (err) => {
        done();
        call.emit('error', finish(start, subject, deadlineAware(err, info))!);
      },
    );
  };
}

// A handler that failed because the call's signal fired reports the signal's
// reason, so a passed deadline reads DEADLINE_EXCEEDED whatever threw.
function deadlineAware(err: unknown, info: CallInfo): unknown {
  const reason = info.signal.reason as Error | undefined;
  if (!info.signal.aborted || reason?.name !== 'DeadlineExceeded') return err;
  return deadlineExceeded(`deadline exceeded: ${err instanceof Error ? err.message : String(err)}`);
}

export interface RunningServer {
  socket: string;
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * Starts serving on the socket; fails clearly if another daemon is listening
 * there. With inheritedFd (socket activation) it serves on that listening
 * socket instead and leaves its file alone: systemd owns it and keeps it
 * open across restarts.
 */
export async function startServer(ctx: Context, socket: string, inheritedFd?: number): Promise<RunningServer> {
  const services = loadServices();
  const handlers = handlerTable();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // Nothing serves channelz here; its per-call bookkeeping costs about 8% of a polled call.
    'grpc.enable_channelz': 0,
  });
  for (const service of [services.runtime, services.image]) {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [rpc] of Object.entries(service)) {
      implementation[rpc] = wrap(ctx, rpc, handlers.get(rpc) ?? undefined);
    }
    server.addService(service, implementation);
  }
  let listener: NetServer;
  if (inheritedFd !== undefined) {
    listener = await listen(server, { fd: inheritedFd }, ctx.config.legacy_authority);
  } else {
    await prepareSocket(socket);
    listener = await listen(server, { path: socket }, ctx.config.legacy_authority);
  }
  // Errors after the start (accept failing with EMFILE) must not end the daemon.
  listener.on('error', (err) => ctx.log.warn({ err: String(err) }, 'CRI socket listener error'));
  if (inheritedFd === undefined) {
    await chown(socket, 0, 0).catch(() => undefined);
    await chmod(socket, 0o660);
  }

  return {
    socket,
    shutdown: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        listener.close();
        server.tryShutdown(() => {
          clearTimeout(force);
          if (inheritedFd !== undefined) resolve();
          else rm(socket, { force: true }).finally(resolve);
        });
      }),
  };
}

/**
 * Refuses a socket another daemon serves on; removes a stale socket file.
 * Returns the first directory it had to create, if any.
 */
export async function prepareSocket(socket: string): Promise<string | undefined> {
  const created = await mkdir(dirname(socket), { recursive: true, mode: 0o711 });
  const existing = await stat(socket).catch(() => undefined);
  if (!existing) return created;
  if (!existing.isSocket()) throw new Error(`${socket} exists and is not a socket; refusing to replace it`);
  if (await isListening(socket)) {
    throw new Error(`another process is already serving on ${socket}; stop it or choose another --listen address`);
  }
  await rm(socket, { force: true });
  return created;
}

function isListening(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection(socket);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

/**
 * Listens on the unix socket (or the inherited listening fd) and hands each
 * connection to the gRPC server as it is. With legacyAuthority each goes
 * through the :authority filter first (see authority.ts), so clients that
 * send the socket path as :authority are served too.
 */
async function listen(server: grpc.Server, at: { path: string } | { fd: number }, legacyAuthority: boolean): Promise<NetServer> {
  let listener: NetServer;
  if (legacyAuthority) {
    const { filteredListener } = await import('./authority.ts');
    listener = filteredListener(server);
  } else {
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    listener = createServer((conn) => injector.injectConnection(conn));
  }
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      if ('fd' in at) listener.listen({ fd: at.fd }, () => resolve());
      else listener.listen(at.path, () => resolve());
    });
  } finally {
    process.umask(previousUmask);
  }
  return listener;
}
