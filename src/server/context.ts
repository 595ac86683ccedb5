// What every RPC handler receives: configuration, log, and the services that
// own each concern. The daemon builds one Context at start.
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { NetworkStatus } from '../network/cni-config.ts';
import type { SandboxService } from '../sandbox/service.ts';
import type { Metrics } from './metrics.ts';
import type { ContainerService } from '../container/service.ts';
import type { StatsService } from '../container/stats.ts';
import type { StreamServer } from '../stream/server.ts';
import type { ImageService } from '../image/service.ts';
import type { SnapshotStore } from '../snapshot/snapshots.ts';
import type { RuntimeFeatures } from '../oci/features.ts';

export interface Context {
  config: Config;
  log: Logger;
  /** tscri's own version, from package.json. */
  version: string;
  network: NetworkStatus;
  sandboxes: SandboxService;
  metrics: Metrics;
  containers: ContainerService;
  stats: StatsService;
  streams: StreamServer;
  images: ImageService;
  /** Layer snapshots shared by images and containers' root filesystems. */
  snapshots: SnapshotStore;
  /** What each runtime handler supports (recursive read-only mounts, user namespaces). */
  runtimeFeatures: RuntimeFeatures;
}
