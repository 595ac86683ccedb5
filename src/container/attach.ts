// Attach for the streaming server: connects a client's streams to a
// container's stdio through conmon's attach socket (SOCK_SEQPACKET, in the
// bundle). conmon prefixes each output packet with one byte naming the
// stream (2 stdout, 3 stderr); input packets are raw stdin bytes. Terminal
// resizes go through the `ctl` fifo. Detaching leaves the container running.
import type { ContainerStreams, StreamIO } from './stream-io.ts';
import { failedPrecondition } from '../errors.ts';
import { CTL_RESIZE, ctlMessage, writeCtl } from './conmon.ts';
import { SeqpacketSocket } from './seqpacket.ts';
import type { ContainerService } from './service.ts';

export const STREAM_STDOUT = 2;
export const STREAM_STDERR = 3;
/** conmon reads at most 32 KiB - 1 per packet; stay well below. */
const STDIN_PACKET = 8192;

/**
 * Wires a connected attach socket to the client's streams. Resolves when
 * conmon closes the socket (the process ended) or the signal aborts (the
 * client went). When the client's stdin ends, `close` closes the process's
 * stdin and the output flows on until it ends (exec, and attach with
 * stdin_once as containerd does it); `detach` resolves at once, leaving the
 * process and its stdin alone (attach otherwise).
 */
export function pipeAttachSocket(
  socket: SeqpacketSocket,
  io: StreamIO,
  signal: AbortSignal,
  ctlDir: string,
  useStdin = true,
  onStdinEnd: 'close' | 'detach' = 'close',
): Promise<void> {
  const stdin = useStdin ? io.stdin : undefined;
  return new Promise<void>((resolve) => {
    socket.on('message', (packet: Buffer) => {
      const data = packet.subarray(1);
      if (!data.length) return;
      if (packet[0] === STREAM_STDOUT) io.stdout?.write(data);
      else if (packet[0] === STREAM_STDERR) (io.stderr ?? io.stdout)?.write(data);
    });
    const onData = (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i += STDIN_PACKET) socket.send(chunk.subarray(i, i + STDIN_PACKET));
    };
    const onEnd = () => {
      if (onStdinEnd === 'close') socket.endWrite();
      else void socket.flushed().then(finish);
    };
    stdin?.on('data', onData);
    stdin?.once('end', onEnd);
    io.onResize((size) => {
      writeCtl(ctlDir, ctlMessage(CTL_RESIZE, size.height, size.width)).catch(() => undefined);
    });
    const finish = () => {
      stdin?.off('data', onData);
      stdin?.off('end', onEnd);
      signal.removeEventListener('abort', onAbort);
      socket.close();
      resolve();
    };
    const onAbort = () => finish();
    socket.once('close', finish);
    if (signal.aborted) finish();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function attachBackend(containers: ContainerService): Pick<ContainerStreams, 'attach'> {
  return {
    async attach(containerId: string, io: StreamIO, signal: AbortSignal): Promise<void> {
      const r = containers.get(containerId);
      if (r.state !== 'CONTAINER_RUNNING') throw failedPrecondition(`container ${r.id} is not running; only a running container can be attached to`);
      if (io.tty !== Boolean(r.config.tty)) {
        throw failedPrecondition(`container ${r.id} was created with tty=${Boolean(r.config.tty)}; attach with the same tty setting`);
      }
      const socket = SeqpacketSocket.connect(r.bundle, 'attach');
      await pipeAttachSocket(socket, io, signal, r.bundle, r.config.stdin, r.config.stdin_once && !io.tty ? 'close' : 'detach');
    },
  };
}
