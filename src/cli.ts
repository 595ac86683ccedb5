// The tscri command line: `tscri [serve] [--config FILE] [--listen unix:///PATH]
// [--root DIR] [--state DIR] [--log-level LEVEL]` and `tscri version`.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Flags } from './config/config.ts';
import { packageVersion, runDaemon } from './daemon.ts';

const USAGE = `Usage: tscri [serve] [flags]
       tscri version

Flags (each overrides the config file):
  --config FILE        TOML config file (see runtime/tscri.toml)
  --listen ADDRESS     unix:///PATH of the CRI socket (default unix:///run/tscri/tscri.sock)
  --root DIR           persistent data (default /var/lib/tscri)
  --state DIR          volatile state (default /run/tscri)
  --log-level LEVEL    trace, debug, info, warn, error (default info)
`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        root: { type: 'string' },
        state: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`tscri: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = parsed.positionals[0] ?? 'serve';
  if (command === 'version') {
    process.stdout.write(`tscri ${await packageVersion()} (CRI runtime.v1)\n`);
    return 0;
  }
  if (command !== 'serve' || parsed.positionals.length > 1) {
    process.stderr.write(`tscri: unknown command ${parsed.positionals.join(' ')}\n\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(parsed.values as Flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tscri: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  await runDaemon(config, parsed.values as Flags);
  return 0;
}

// bin/tscri names Node's compile cache (read when Node started); the processes tscri starts do not need it.
delete process.env.NODE_COMPILE_CACHE;

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`tscri: ${err instanceof Error ? err.message : String(err)}\n`);
    // Servers started before the failure would keep the process alive.
    process.exit(1);
  },
);
