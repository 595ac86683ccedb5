// Streaming exec for the streaming server: each session is a conmon
// `--exec --exec-attach` in a directory of its own (process spec, pid file,
// attach socket, ctl fifo). conmon runs `runc exec --detach` (with a
// terminal when asked), and the client's streams meet the process through
// the session's attach socket exactly as for attach. Exec sessions get no
// --exit-dir (their end is not the container's); the exit code arrives on
// the sync pipe instead.
import type { Process } from '../oci/types.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerStreams, StreamIO, TerminalSize } from './stream-io.ts';
import { VOLATILE, writeFileAtomic } from '../store/store.ts';
import { internal, invalidArgument, quote } from '../errors.ts';
import { conmonExecArgs, CTL_RESIZE, ctlMessage, firstSyncMessage, spawnConmon, writeCtl } from './conmon.ts';
import { SeqpacketSocket } from './seqpacket.ts';
import type { ContainerService } from './service.ts';
import { execProcess } from './ops/exec.ts';
import { pipeAttachSocket } from './attach.ts';
import { attachBackend } from './attach.ts';

const READY_TIMEOUT_MS = 60_000;

/** The exec process: the container's process running cmd, with TERM set for terminals. */
export function streamingExecProcess(base: Process, cmd: string[], tty: boolean): Process {
  const p = execProcess(base, cmd, tty);
  const env: string[] = Array.isArray(p.env) ? [...p.env] : [];
  if (tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  p.env = env;
  return p;
}

function withConsoleSize(process: Process, size: TerminalSize | undefined): Process {
  return size ? { ...process, consoleSize: { height: size.height, width: size.width } } : process;
}

export async function execStreaming(
  containers: ContainerService,
  conmonPath: string,
  containerId: string,
  cmd: string[],
  io: StreamIO,
  signal: AbortSignal,
): Promise<number> {
  if (!cmd.length) throw invalidArgument('cmd is required');
  // kubectl sends the terminal size at once, before the process has a terminal: the
  // latest size goes into the process spec, and is applied again once the process runs.
  let size: TerminalSize | undefined;
  if (io.tty) io.onResize((s) => (size = s));
  const { record, runtime, process: base } = await containers.execTarget(containerId);
  const sessionId = randomBytes(8).toString('hex');
  const dir = join(record.bundle, `exec-${sessionId}`);
  await mkdir(dir, { mode: 0o700 });
  try {
    const processSpec = join(dir, 'process.json');
    await writeFileAtomic(processSpec, JSON.stringify(withConsoleSize(streamingExecProcess(base, cmd, io.tty), size)), 0o600, VOLATILE);
    const args = conmonExecArgs({
      conmonPath,
      runtimePath: runtime.path,
      runtimeArgs: runtime.globalArgs().filter((a) => a !== '--systemd-cgroup'),
      id: record.id,
      sessionId,
      sessionDir: dir,
      processSpec,
      socketDir: containers.socketDir,
      terminal: io.tty,
      stdin: Boolean(io.stdin),
    });
    const conmon = spawnConmon(conmonPath, args, dir, true);
    // conmon waits for one byte before it forks, and another before it runs the process.
    conmon.start!.write('0');
    let socket: SeqpacketSocket | undefined;
    try {
      const ready = await firstSyncMessage(conmon, conmon.attach!, READY_TIMEOUT_MS);
      if (ready.data < 0) throw new Error(ready.message ?? 'conmon could not set up the attach socket');
      socket = SeqpacketSocket.connect(dir, 'attach');
      // Listen before the process starts: a short command's output and end may come at once.
      const streamed = pipeAttachSocket(socket, io, new AbortController().signal, dir);
      conmon.start!.write('0');
      const started = await firstSyncMessage(conmon, conmon.sync, READY_TIMEOUT_MS);
      if (started.data <= 0) throw new Error(started.message?.trim() || 'the runtime could not start the command');
      const pid = started.data;
      if (size) await writeCtl(dir, ctlMessage(CTL_RESIZE, size.height, size.width)).catch(() => undefined);
      const kill = () => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      signal.addEventListener('abort', kill, { once: true });
      try {
        const exit = await conmon.sync.next();
        // conmon sends the exit code after it drained the output; the socket closes when conmon exits.
        await streamed;
        return exit.data;
      } finally {
        signal.removeEventListener('abort', kill);
      }
    } catch (err) {
      socket?.close();
      conmon.child.kill('SIGKILL');
      throw internal(`cannot run ${quote(cmd)} in container ${record.id}: ${(err as Error).message}`);
    } finally {
      for (const fd of [3, 4, 5]) (conmon.child.stdio[fd] as unknown as { destroy?: () => void } | null)?.destroy?.();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The exec and attach half of the streaming server's backend. */
export function containerStreams(containers: ContainerService, conmonPath: string): ContainerStreams {
  return {
    exec: (containerId, cmd, io, signal) => execStreaming(containers, conmonPath, containerId, cmd, io, signal),
    ...attachBackend(containers),
  };
}
