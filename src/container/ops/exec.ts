// ExecSync and the target of a streaming Exec: a command run in a running
// container with the process settings (user, env, cwd, capabilities) of its
// spec.
import { readFile } from 'node:fs/promises';
import type { Process } from '../../oci/types.ts';
import { failedPrecondition, invalidArgument } from '../../errors.ts';
import type { OciRuntime } from '../runtime.ts';
import { bundleFiles } from '../conmon.ts';
import type { ContainerRecord } from '../record.ts';
import { execSync, type ExecSyncResult } from '../execsync.ts';
import { type ContainerState, stateWord } from '../state.ts';

/** The process spec of an exec: the container's process with another command. */
export function execProcess(base: Process, cmd: string[], terminal: boolean): Process {
  const { consoleSize: _size, ...rest } = base;
  return { ...rest, args: cmd, terminal };
}

export async function execSyncIn(s: ContainerState, id: string, cmd: string[], timeoutSeconds: number, signal?: AbortSignal): Promise<ExecSyncResult> {
  const r = s.get(id);
  if (!cmd.length) throw invalidArgument('cmd is required');
  if (r.state !== 'CONTAINER_RUNNING') throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; commands run only in a running container`);
  const spec = JSON.parse(await readFile(bundleFiles(r.bundle).config, 'utf8'));
  return execSync(s.runtimeFor(r.runtimeHandler), r.id, r.bundle, execProcess(spec.process, cmd, false), timeoutSeconds, signal);
}

/** The process spec for a command run in container id (used by streaming exec). */
export async function execTarget(s: ContainerState, id: string): Promise<{ record: ContainerRecord; runtime: OciRuntime; process: Process }> {
  const r = s.get(id);
  if (r.state !== 'CONTAINER_RUNNING') throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; commands run only in a running container`);
  const spec = JSON.parse(await readFile(bundleFiles(r.bundle).config, 'utf8'));
  return { record: r, runtime: s.runtimeFor(r.runtimeHandler), process: spec.process };
}
