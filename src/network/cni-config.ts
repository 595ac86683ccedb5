// Finding the CNI network configuration: the first .conflist/.conf/.json file
// (in lexical order, as kubelet and containerd choose) in the configured dir.
import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface NetworkCondition {
  ready: boolean;
  reason: string;
  message: string;
}

export interface NetworkStatus {
  condition(): Promise<NetworkCondition>;
}

const CONFIG_EXTENSIONS = ['.conflist', '.conf', '.json'];

export async function findCniConfigFile(confDir: string): Promise<string | undefined> {
  const names = await readdir(confDir).catch(() => [] as string[]);
  const first = names.filter((n) => CONFIG_EXTENSIONS.some((ext) => n.endsWith(ext))).sort()[0];
  return first ? join(confDir, first) : undefined;
}

function hasCniConfigFile(confDir: string): boolean {
  let names: string[];
  try {
    names = readdirSync(confDir);
  } catch {
    return false;
  }
  return names.some((n) => CONFIG_EXTENSIONS.some((ext) => n.endsWith(ext)));
}

/**
 * Reports NetworkReady from the presence of a CNI config, read fresh on each
 * call: a readdir on the event loop (the directory is in the dentry cache),
 * never queued behind disk writes in the thread pool.
 */
export function cniConfigStatus(confDir: () => string): NetworkStatus {
  return {
    async condition() {
      if (hasCniConfigFile(confDir())) return { ready: true, reason: '', message: '' };
      return {
        ready: false,
        reason: 'NetworkPluginNotReady',
        message: `Network plugin returns error: no CNI configuration file in ${confDir()}; install one such as runtime/cni/10-tscri-bridge.conflist`,
      };
    },
  };
}
