// StartContainer: `runc start` once the runtime has created the container
// (or, for a container made from a checkpoint, the restore) in a ready pod,
// never alongside the pod's stop or removal; an exit seen while the start
// runs waits for the started event.
import { failedPrecondition, internal } from '../../errors.ts';
import type { ContainerRecord } from '../record.ts';
import { restoreContainer } from './checkpoint.ts';
import { ensureLaunched } from './launch.ts';
import { type ContainerState, nowNs, stateWord } from '../state.ts';

export async function startContainer(s: ContainerState, id: string): Promise<void> {
  const r = s.get(id);
  // A process that exits at once is seen by the exit watcher while start
  // still runs: its stopped event waits for the started event.
  let started!: () => void;
  const starting = new Promise<void>((resolve) => (started = resolve));
  await s.pods.shared(r.sandboxId, () =>
    s.ops.with(r.id, async () => {
      const pod = s.deps.sandbox(r.sandboxId);
      if (pod?.state !== 'SANDBOX_READY')
        throw failedPrecondition(
          `the pod sandbox ${r.sandboxId} of container ${r.id} is ${pod ? 'not ready' : 'gone'}; containers start only in a running pod`,
        );
      s.starting.set(r.id, starting);
      try {
        await startLocked(s, r);
      } finally {
        s.starting.delete(r.id);
        started();
      }
    }),
  );
  await s.nri.postStartContainer(r);
}

async function startLocked(s: ContainerState, r: ContainerRecord): Promise<void> {
  if (r.state !== 'CONTAINER_CREATED') throw failedPrecondition(`container ${r.id} is ${stateWord(r.state)}; only a created container can be started`);
  const runtime = s.runtimeFor(r.runtimeHandler);
  await ensureLaunched(s, r);
  await s.nri.startContainer(r);
  if (r.restore) return restoreContainer(s, r, runtime);
  try {
    await runtime.start(r.id);
  } catch (err) {
    throw internal(`cannot start container ${r.id}: ${(err as Error).message}`);
  }
  if (r.state === 'CONTAINER_CREATED') {
    r.startedAt = nowNs();
    r.state = 'CONTAINER_RUNNING';
  } else if (!r.startedAt) {
    r.startedAt = Math.min(nowNs(), r.finishedAt || nowNs());
  }
  await s.persist(r);
  s.events.publish('CONTAINER_STARTED_EVENT', r.id, r.sandboxId);
}
