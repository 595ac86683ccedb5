// What most integration files start before their tests: a loopback registry
// with a busybox image, a test CNI network, a daemon whose pods go under a
// cgroup parent of the file's own, and the image pulled; and the cleanup
// that removes the pods the tests recorded, then all of that.
import { randomBytes } from 'node:crypto';
import { removeCgroup } from '../../src/cgroups/cgroups.ts';
import { makeTestNetwork, type TestNetwork } from './cni.ts';
import { startDaemon, type TestDaemon } from './daemon.ts';
import { pushBusybox } from './images.ts';
import { startRegistry, type TestRegistry } from './registry.ts';

export interface PodFixtureOptions {
  /** Names the cgroup parent (/tscri-NAME-TAG) and the image's repository (NAME/busybox:v1). */
  name: string;
  /** A test CNI network for the pods (default true). */
  network?: boolean;
  /** More of the daemon's TOML config (tables such as [metrics]). */
  config?: string;
  /** The busybox image's config. */
  image?: Parameters<typeof pushBusybox>[3];
  /** Pull the image into the daemon before the tests (default true). */
  pull?: boolean;
  /** The daemon's directory, made by the caller (for files placed there before it starts). */
  dir?: string;
}

export interface PodFixture {
  registry: TestRegistry;
  network: TestNetwork | undefined;
  d: TestDaemon;
  image: string;
  /** Unique to this run, for names and uids. */
  tag: string;
  parent: string;
  /** Pods the tests made; cleanup removes them. */
  pods: string[];
  cleanup(): Promise<void>;
}

export async function startPodFixture(o: PodFixtureOptions): Promise<PodFixture> {
  const tag = randomBytes(3).toString('hex');
  const parent = `/tscri-${o.name}-${tag}`;
  const registry = await startRegistry();
  const network = o.network === false ? undefined : await makeTestNetwork();
  const d = await startDaemon({ dir: o.dir, config: `default_cgroup_parent = "${parent}"\n${network?.toml ?? ''}${o.config ?? ''}` });
  await pushBusybox(registry.url, `${o.name}/busybox`, 'v1', o.image);
  const image = `${registry.host}/${o.name}/busybox:v1`;
  if (o.pull !== false) await d.call('PullImage', { image: { image } });
  const pods: string[] = [];
  return {
    registry,
    network,
    d,
    image,
    tag,
    parent,
    pods,
    // Each step runs whatever the one before did, so a failed run still removes what it made; the first failure is thrown at the end.
    async cleanup() {
      for (const id of pods) await d.call('RemovePodSandbox', { pod_sandbox_id: id }).catch(() => undefined);
      const steps = [() => d.cleanup(), async () => network?.cleanup(), () => registry.stop(), () => removeCgroup(parent)];
      let failure: unknown;
      for (const step of steps) await step().catch((err: unknown) => (failure ??= err));
      if (failure) throw failure;
    },
  };
}
