// Configuration: the defaults, the TOML file (runtime/tscri.toml documents
// every key) and the command-line flags that override it. Owns nothing else.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';

export interface RuntimeHandlerConfig {
  /** Path of the OCI runtime binary (runc, crun). */
  path: string;
  /** Root directory for the runtime's own state; empty means <state>/runtime/<handler>. */
  root: string;
}

export interface RegistryAuth {
  username: string;
  password: string;
  auth: string;
  identity_token: string;
}

export interface NriSettings {
  enable: boolean;
  socket_path: string;
  plugin_path: string;
  plugin_config_path: string;
  /** Seconds a plugin has to register after it connects or is started. */
  registration_timeout: number;
  /** Seconds a plugin has to answer one request. */
  request_timeout: number;
  /** Serve only pre-installed plugins; accept no connections on socket_path. */
  disable_connections: boolean;
}

export interface Config {
  listen: string;
  /**
   * Also serve gRPC clients that send the socket path as the HTTP/2
   * :authority (kubelet before 1.26, crictl 1.26): every connection then
   * passes through a frame filter. Off: Kubernetes' CRI client and crictl
   * since 1.27 send "localhost".
   */
  legacy_authority: boolean;
  root: string;
  state: string;
  log_level: string;
  cgroup_driver: 'cgroupfs' | 'systemd';
  /** Cgroup parent used when a pod names none. */
  default_cgroup_parent: string;
  runtime: {
    default_handler: string;
    handlers: Record<string, RuntimeHandlerConfig>;
  };
  conmon: { path: string };
  pod: {
    infra_path: string;
    shm_size: number;
    restrict_oom_score_adj: boolean;
  };
  cni: { conf_dir: string; bin_dirs: string[]; builtin_loopback: boolean };
  registry: {
    config_path: string;
    auths: Record<string, RegistryAuth>;
    /** Registry host to credential helper name (runs docker-credential-<name>), as Docker's and CRI-O's credHelpers. */
    cred_helpers: Record<string, string>;
    /** The credential helper for registries without another source, as Docker's credsStore. */
    creds_store: string;
    /** A Docker config.json or containers auth.json (auths, credHelpers, credsStore); empty for none. */
    auth_file: string;
  };
  image: {
    pull_timeout_seconds: number;
    progress_deadline_seconds: number;
    /** A pull that runs longer logs its progress at info this often (0: never). */
    progress_log_interval_seconds: number;
    max_concurrent_downloads: number;
    pinned_images: string[];
    /** Leave an image's VOLUMEs in the writable layer instead of making anonymous volumes for them. */
    ignore_image_defined_volumes: boolean;
  };
  stream: {
    address: string;
    port: number;
    tls_cert: string;
    tls_key: string;
    token_timeout_seconds: number;
  };
  security: {
    seccomp_profile: string;
    apparmor_default_profile: string;
  };
  metrics: { address: string };
  nri: NriSettings;
  /** CDI spec directories, lowest priority first (later ones override earlier ones). */
  cdi: { spec_dirs: string[] };
}

export function defaultConfig(): Config {
  return {
    listen: 'unix:///run/tscri/tscri.sock',
    legacy_authority: false,
    root: '/var/lib/tscri',
    state: '/run/tscri',
    log_level: 'info',
    cgroup_driver: 'cgroupfs',
    default_cgroup_parent: '/tscri',
    runtime: {
      default_handler: 'runc',
      handlers: {
        runc: { path: '/usr/sbin/runc', root: '' },
        crun: { path: '/usr/bin/crun', root: '' },
      },
    },
    conmon: { path: '/usr/bin/conmon' },
    pod: { infra_path: '/usr/bin/catatonit', shm_size: 64 * 1024 * 1024, restrict_oom_score_adj: true },
    cni: { conf_dir: '/etc/cni/net.d', bin_dirs: ['/opt/cni/bin', '/usr/lib/cni'], builtin_loopback: true },
    registry: { config_path: '/etc/tscri/certs.d', auths: {}, cred_helpers: {}, creds_store: '', auth_file: '' },
    image: {
      pull_timeout_seconds: 0,
      progress_deadline_seconds: 60,
      progress_log_interval_seconds: 10,
      max_concurrent_downloads: 3,
      pinned_images: [],
      ignore_image_defined_volumes: false,
    },
    stream: { address: '127.0.0.1', port: 0, tls_cert: '', tls_key: '', token_timeout_seconds: 60 },
    security: { seccomp_profile: '', apparmor_default_profile: '' },
    metrics: { address: '' },
    cdi: { spec_dirs: ['/etc/cdi', '/var/run/cdi'] },
    nri: {
      enable: false,
      socket_path: '/var/run/nri/nri.sock',
      plugin_path: '/opt/nri/plugins',
      plugin_config_path: '/etc/nri/conf.d',
      registration_timeout: 5,
      request_timeout: 2,
      disable_connections: false,
    },
  };
}

export interface Flags {
  config?: string;
  listen?: string;
  root?: string;
  state?: string;
  'log-level'?: string;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** Builds the effective configuration: defaults, then the file, then flags. */
export function loadConfig(flags: Flags): Config {
  const config = defaultConfig();
  if (flags.config) mergeInto(config as unknown as Record<string, unknown>, readToml(flags.config), '');
  if (flags.listen) config.listen = flags.listen;
  if (flags.root) config.root = flags.root;
  if (flags.state) config.state = flags.state;
  if (flags['log-level']) config.log_level = flags['log-level'];
  validate(config);
  return config;
}

function readToml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid TOML: ${(err as Error).message}`);
  }
}

export class ConfigError extends Error {}

// Tables whose keys are chosen by the user (handler names, registry hosts);
// their entries are merged onto a template of the entry's type.
const OPEN_TABLES: Record<string, () => Record<string, unknown>> = {
  'runtime.handlers': () => ({ path: '', root: '' }),
  'registry.auths': () => ({ username: '', password: '', auth: '', identity_token: '' }),
};

// Tables of strings whose keys are chosen by the user (registry host = helper name).
const STRING_TABLES = new Set(['registry.cred_helpers']);

/** Merges a parsed TOML table onto defaults, rejecting unknown keys and wrong types. */
export function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>, prefix: string): void {
  for (const [key, value] of Object.entries(source)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (STRING_TABLES.has(prefix)) {
      if (typeof value !== 'string') throw new ConfigError(`config key ${path} must be a string`);
      target[key] = value;
      continue;
    }
    const open = OPEN_TABLES[prefix];
    if (open) {
      if (!isTable(value)) throw new ConfigError(`config key ${path} must be a table`);
      const entry = isTable(target[key]) ? target[key] : (target[key] = open());
      mergeInto(entry, value, `${prefix}.*`);
      continue;
    }
    if (!(key in target)) throw new ConfigError(`unknown config key ${path}`);
    const current = target[key];
    if (isTable(current)) {
      if (!isTable(value)) throw new ConfigError(`config key ${path} must be a table`);
      mergeInto(current, value, path);
    } else if (Array.isArray(current)) {
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
        throw new ConfigError(`config key ${path} must be a list of strings`);
      }
      target[key] = value;
    } else {
      if (typeof value !== typeof current) {
        throw new ConfigError(`config key ${path} must be a ${typeof current}, got ${typeof value}`);
      }
      target[key] = value;
    }
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function validate(config: Config): void {
  if (!config.listen.startsWith('unix://')) {
    throw new ConfigError(`listen must be a unix socket address such as unix:///run/tscri/tscri.sock, got ${config.listen}`);
  }
  if (!LOG_LEVELS.includes(config.log_level)) {
    throw new ConfigError(`log_level must be one of ${LOG_LEVELS.join(', ')}, got ${config.log_level}`);
  }
  if (config.cgroup_driver !== 'cgroupfs' && config.cgroup_driver !== 'systemd') {
    throw new ConfigError(`cgroup_driver must be cgroupfs or systemd, got ${config.cgroup_driver}`);
  }
  if (!config.runtime.handlers[config.runtime.default_handler]) {
    throw new ConfigError(`runtime.default_handler ${config.runtime.default_handler} has no [runtime.handlers.${config.runtime.default_handler}] table`);
  }
  for (const [name, handler] of Object.entries(config.runtime.handlers)) {
    if (!handler.path) throw new ConfigError(`runtime.handlers.${name}.path is empty`);
  }
  if (!(config.nri.registration_timeout > 0) || !(config.nri.request_timeout > 0)) {
    throw new ConfigError('nri.registration_timeout and nri.request_timeout must be positive numbers of seconds');
  }
  if (!config.nri.socket_path.startsWith('/')) {
    throw new ConfigError(`nri.socket_path must be an absolute path, got ${config.nri.socket_path}`);
  }
  if (config.image.max_concurrent_downloads < 1) {
    throw new ConfigError('image.max_concurrent_downloads must be at least 1');
  }
}

/** The socket path of a unix:// listen address. */
export function socketPath(listen: string): string {
  return listen.slice('unix://'.length);
}
