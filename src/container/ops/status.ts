// ContainerStatus: the record as the CRI shows it, after checking that a
// running container's conmon is still there; verbose adds the runtime spec.
import { readFile } from 'node:fs/promises';
import type { ContainerStatus } from '../../generated/runtime/v1/ContainerStatus.ts';
import { bundleFiles } from '../conmon.ts';
import { toStatus, verboseInfo } from '../record.ts';
import { checkMonitor } from './recovery.ts';
import type { ContainerState } from '../state.ts';

export async function containerStatus(s: ContainerState, id: string, verbose: boolean): Promise<{ status: ContainerStatus; info: Record<string, string> }> {
  const r = s.get(id);
  await checkMonitor(s, r).catch((err) => s.log.warn({ id: r.id, err: String(err) }, 'cannot check the monitor of a container'));
  let info: Record<string, string> = {};
  if (verbose) {
    const spec = await readFile(bundleFiles(r.bundle).config, 'utf8').then(JSON.parse, () => undefined);
    info = verboseInfo(r, spec);
  }
  return { status: toStatus(r), info };
}
