// Pre-installed plugins: every executable "NN-name" in plugin_path is started
// by the runtime with a connected socket as its file descriptor 3 (announced
// in NRI_PLUGIN_SOCKET) and its configuration read from plugin_config_path
// ("NN-name.conf", else "name.conf").
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { parsePluginFileName } from './events.ts';

export interface Discovered {
  index: string;
  name: string;
  file: string;
  config: string;
}

/** Largest plugin configuration read from plugin_config_path. */
const MAX_CONFIG = 1 << 20;

/** The pre-installed plugins, or a list of problems with entries that look like plugins. */
export async function discoverPlugins(pluginPath: string, configPath: string): Promise<{ plugins: Discovered[]; problems: string[] }> {
  const plugins: Discovered[] = [];
  const problems: string[] = [];
  let entries: string[];
  try {
    entries = (await readdir(pluginPath)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { plugins, problems };
    throw err;
  }
  for (const entry of entries) {
    const file = join(pluginPath, entry);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile() || (info.mode & 0o111) === 0) continue;
    const parsed = parsePluginFileName(entry);
    if (typeof parsed === 'string') {
      problems.push(parsed);
      continue;
    }
    try {
      plugins.push({ ...parsed, file, config: await pluginConfig(configPath, parsed.index, parsed.name) });
    } catch (err) {
      problems.push(`configuration of NRI plugin ${entry}: ${(err as Error).message}`);
    }
  }
  return { plugins, problems };
}

async function pluginConfig(dir: string, index: string, name: string): Promise<string> {
  for (const file of [join(dir, `${index}-${name}.conf`), join(dir, `${name}.conf`)]) {
    const info = await stat(file).catch(() => undefined);
    if (!info) continue;
    if (info.size > MAX_CONFIG) throw new Error(`${file} is larger than ${MAX_CONFIG} bytes`);
    return readFile(file, 'utf8');
  }
  return '';
}

/** Starts a plugin with a socket on its fd 3; returns the process and our end of the socket. */
export async function launchPlugin(plugin: Discovered, onOutput: (line: string) => void): Promise<{ process: ChildProcess; socket: Duplex }> {
  await access(plugin.file, constants.X_OK);
  // Node creates 'pipe' stdio as a connected AF_UNIX stream socket pair.
  const child = spawn(plugin.file, [], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { NRI_PLUGIN_NAME: plugin.name, NRI_PLUGIN_IDX: plugin.index, NRI_PLUGIN_SOCKET: '3' },
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  for (const stream of [child.stdout!, child.stderr!]) forwardLines(stream, onOutput);
  return { process: child, socket: child.stdio[3] as Duplex };
}

/** Passes a plugin's output on line by line, each cut to a bounded length. */
function forwardLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const MAX_LINE = 4096;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!.slice(0, MAX_LINE);
    for (const line of lines) if (line) onLine(line.slice(0, MAX_LINE));
  });
  stream.on('error', () => undefined);
}
