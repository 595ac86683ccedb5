// Connects the container service to the services it relies on: pods
// (sandbox records), images (resolution and rootfs snapshots), the OCI spec
// builder and the cgroup layout.
import { rm } from 'node:fs/promises';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { SandboxRecord } from '../sandbox/record.ts';
import { failedPrecondition } from '../errors.ts';
import { containerCgroupsPath } from '../cgroups/cgroups.ts';
import type { ContainerDeps } from './service.ts';

export interface ContainerWiring {
  config: Config;
  log: Logger;
  sandboxes: { get(id: string): SandboxRecord | undefined };
  /** Provided by the image, snapshot and OCI spec services. */
  resolveImage?: ContainerDeps['resolveImage'];
  prepareRootfs?: ContainerDeps['prepareRootfs'];
  removeRootfs?: ContainerDeps['removeRootfs'];
  deleteStateDir?: ContainerDeps['deleteStateDir'];
  upperDir?: ContainerDeps['upperDir'];
  makeSpec?: ContainerDeps['makeSpec'];
  ociResources?: ContainerDeps['ociResources'];
  cgroupsPath?: ContainerDeps['cgroupsPath'];
  nri?: ContainerDeps['nri'];
}

const missing = (what: string) => () => {
  throw failedPrecondition(`${what} is not available in this build of tscri`);
};

export function containerDeps(w: ContainerWiring): ContainerDeps {
  return {
    config: w.config,
    log: w.log,
    sandbox: (id) => w.sandboxes.get(id),
    resolveImage: w.resolveImage ?? (async () => missing('image storage')()),
    prepareRootfs: w.prepareRootfs ?? (async () => missing('the snapshot store')()),
    removeRootfs: w.removeRootfs ?? (async () => undefined),
    deleteStateDir: w.deleteStateDir ?? ((path) => rm(path, { recursive: true, force: true })),
    upperDir: w.upperDir ?? missing('the snapshot store'),
    makeSpec: w.makeSpec ?? (async () => missing('the OCI spec builder')()),
    ociResources: w.ociResources ?? missing('resource conversion'),
    cgroupsPath: w.cgroupsPath ?? ((sandbox, id) => containerCgroupsPath(sandbox, id, w.config.cgroup_driver)),
    nri: w.nri,
  };
}
