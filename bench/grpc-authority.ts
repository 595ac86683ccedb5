// Cost of the :authority filter (src/server/authority.ts): Version calls per
// second against a gRPC server in a child process listening
//   direct   - grpc-js on the unix socket itself (no filter possible),
//   wrapped  - our listener handing connections over as a stream, no filter,
//   filtered - our listener with the filter (what tscri runs),
// sequentially and with 32 calls in flight: calls per second and the
// server's CPU time per call, and the filter's own time per call on
// grpc-go's bytes. Prints medians over runs.
//   node bench/grpc-authority.ts   (TSCRI_BENCH_RUNS=5, TSCRI_BENCH_CALLS=3000 by default)
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { median } from './measure.ts';
import { AuthorityFilter, filteredListener } from '../src/server/authority.ts';
import { loadServices } from '../src/server/server.ts';
import { criClient } from '../test/helpers/cri-client.ts';

const RUNS = Number(process.env.TSCRI_BENCH_RUNS ?? 5);
const CALLS = Number(process.env.TSCRI_BENCH_CALLS ?? 3000);
const MODES = ['direct', 'wrapped', 'filtered'] as const;
type Mode = (typeof MODES)[number];

/** The socket as a plain stream, to tell the cost of handing a connection over from the filter's. */
function wrapped(socket: Socket): Duplex {
  const duplex = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, _e, cb) => void socket.write(chunk, cb),
    final: (cb) => {
      socket.end();
      cb();
    },
    destroy: (err, cb) => {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (c) => duplex.push(c) || socket.pause());
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  socket.on('error', () => duplex.destroy());
  return duplex;
}

async function serve(mode: Mode, socket: string): Promise<void> {
  const server = new grpc.Server();
  const { runtime } = loadServices();
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const rpc of Object.keys(runtime)) {
    implementation[rpc] = (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
      callback(null, { version: '0.1.0', runtime_name: 'tscri', runtime_version: '0.1.0', runtime_api_version: 'v1' });
  }
  server.addService(runtime, implementation);
  if (mode === 'direct') {
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  } else {
    let listener;
    if (mode === 'filtered') listener = filteredListener(server);
    else {
      const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
      listener = createServer((conn) => injector.injectConnection(wrapped(conn)));
    }
    await new Promise<void>((resolve) => listener.listen(socket, resolve));
  }
  process.once('SIGTERM', () => process.exit(0));
  // The parent asks for the CPU time used so far, in microseconds.
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send!(user + system);
  });
  process.send!('ready');
}

let servers = 0;

/** Calls per second, and the server's CPU microseconds per call. */
async function measure(mode: Mode, dir: string, inFlight: number): Promise<[number, number]> {
  const socket = join(dir, `${mode}-${servers++}.sock`);
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve', mode, socket], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    const cpu = () =>
      new Promise<number>((resolve) => {
        child.once('message', (m) => resolve(Number(m)));
        child.send('usage');
      });
    const client = criClient(socket);
    try {
      for (let i = 0; i < 200; i++) await client.call('Version', {});
      const cpuBefore = await cpu();
      const start = performance.now();
      let next = 0;
      const worker = async () => {
        while (next++ < CALLS) await client.call('Version', {});
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
      const seconds = (performance.now() - start) / 1000;
      return [CALLS / seconds, ((await cpu()) - cpuBefore) / CALLS];
    } finally {
      client.close();
    }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill();
    await exited;
  }
}

/** Microseconds the filter spends on one grpc-go call (HEADERS with a path authority, then DATA). */
function filterCost(): number {
  const hex = (s: string) => Buffer.from(s, 'hex');
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  // crictl 1.26's first call, then its later calls, which refer to the table.
  const first = hex(
    '8386459962cb6a49a92afdc2bedb6a49a92ee2d9dcc42b1c4b620c7abf418e6134d6c0ed4ce16083ad741c9d7f5f8b1d75d0620d263d4c4d65647a8a9acac8b4c7602bb615c140027465864d833505b11f408e9acac8b0c842d6958b510f21aa9b839bd9ab40899acac8b24d494f6a7f860befb8d361b7',
  );
  const later = hex('8386c4c3c2c1c0bf7e860befbefba2b7');
  const filter = new AuthorityFilter();
  filter.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(1, 4, 1, first)]));
  const n = 100_000;
  const calls = Array.from({ length: 1000 }, (_, i) => Buffer.concat([frame(1, 4, 3 + 2 * i, later), frame(0, 1, 3 + 2 * i, hex('0000000000'))]));
  const start = performance.now();
  for (let i = 0; i < n; i++) filter.write(calls[i % calls.length]!);
  return ((performance.now() - start) * 1000) / n;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') return serve(process.argv[3] as Mode, process.argv[4]!);
  const dir = await mkdtemp(join(tmpdir(), 'tscri-bench-authority-'));
  try {
    console.log(`Version calls/s and server CPU µs per call, median of ${RUNS} runs of ${CALLS} calls (server in a child process)`);
    console.log('mode       sequential                 32 in flight');
    // Modes interleaved within each run, so drifting load on the machine hits them alike.
    const results = new Map<string, Array<[number, number]>>();
    for (let r = 0; r < RUNS; r++) {
      for (const inFlight of [1, 32]) {
        for (const mode of MODES) {
          const key = `${mode}/${inFlight}`;
          results.set(key, [...(results.get(key) ?? []), await measure(mode, dir, inFlight)]);
        }
      }
    }
    const pct = (x: number, base: number) => `${x >= base ? '+' : ''}${((x / base - 1) * 100).toFixed(0)}%`.padStart(5);
    for (const mode of MODES) {
      const row = [1, 32].map((inFlight) => {
        const rate = median(results.get(`${mode}/${inFlight}`)!.map((x) => x[0]));
        const cpu = median(results.get(`${mode}/${inFlight}`)!.map((x) => x[1]));
        const baseRate = median(results.get(`direct/${inFlight}`)!.map((x) => x[0]));
        const baseCpu = median(results.get(`direct/${inFlight}`)!.map((x) => x[1]));
        return `${rate.toFixed(0).padStart(6)}/s ${pct(rate, baseRate)} ${cpu.toFixed(0).padStart(4)}µs ${pct(cpu, baseCpu)}`;
      });
      console.log(`${mode.padEnd(9)}  ${row.join('   ')}`);
    }
    console.log(`filter alone: ${filterCost().toFixed(2)} µs per grpc-go call (HEADERS from the table + DATA)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
