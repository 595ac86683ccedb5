// The OCI runtime spec (config.json) of a container, built from the CRI
// request, the pod sandbox and the image config: an empty spec, then each
// rule of src/oci/spec-opts.ts in order.
import type { Spec, User } from './types.ts';
import { SpecError } from './errors.ts';
import type { BuiltSpec, SpecInput, SpecOpt } from './spec-input.ts';
import { CONTAINER_SPEC_OPTS, emptySpec } from './spec-opts.ts';

export { SpecError };
export type { ImageSettings as ImageConfig } from './request.ts';
export type { BuiltSpec, HostDevice, HostFacts, SpecInput, SpecOpt } from './spec-input.ts';
export { namespaces, processArgs, processEnv } from './spec-opts.ts';

export function buildSpec(input: SpecInput, opts: readonly SpecOpt[] = CONTAINER_SPEC_OPTS): BuiltSpec {
  const spec = emptySpec();
  for (const opt of opts) opt(spec, input);
  return spec;
}

/** The effective user for ContainerStatus.user. */
export function specUser(spec: Spec): { uid: number; gid: number; supplemental_groups: number[] } {
  const u: Partial<User> = spec.process?.user ?? {};
  return { uid: u.uid ?? 0, gid: u.gid ?? 0, supplemental_groups: u.additionalGids ?? [u.gid ?? 0] };
}
