// The OCI image documents tscri reads (image-spec v1.1; Docker schema 2 has the
// same shape): descriptors, manifests, indexes and the image config. The
// checkers of validate.ts prove a parsed document has these types.

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Platform {
  os?: string;
  architecture?: string;
  variant?: string;
  'os.version'?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Array<Descriptor & { platform?: Platform }>;
  annotations?: Record<string, string>;
}

/** The runtime settings of an image config: what a container inherits. */
export interface ImageRuntimeConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  StopSignal?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, unknown>;
  Volumes?: Record<string, unknown>;
  ArgsEscaped?: boolean;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: ImageRuntimeConfig;
  rootfs: { type?: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
}
