// Dialing localhost:PORT inside a pod's network namespace for port-forward,
// without needing socat in the image: a small relay (relay.ts) is started in
// the namespace with nsenter and the connection flows over its stdio. Node
// cannot switch one socket's namespace, and a relay process per connection
// keeps the daemon itself out of pod namespaces.
import { spawnPiped } from '../sys/spawn.ts';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';

const RELAY = fileURLToPath(new URL('./relay.ts', import.meta.url));

export function validPort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port < 65536;
}

/** Opens a connection to localhost:port in the netns at netnsPath (or on the host when absent). */
export async function dialInNetns(netnsPath: string | undefined, port: number, signal: AbortSignal): Promise<Duplex> {
  if (!validPort(port)) throw new Error(`invalid port ${port}`);
  if (!netnsPath) return dialHost(port);
  const child = spawnPiped('nsenter', [`--net=${netnsPath}`, process.execPath, RELAY, String(port)]);
  const kill = () => child.kill('SIGKILL');
  signal.addEventListener('abort', kill, { once: true });
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 4096) stderr += d;
  });
  // The relay may die at any time (the pod goes, the connection resets): a
  // write to its stdin then fails with EPIPE, which must not end the daemon.
  for (const pipe of [child.stdin, child.stdout, child.stderr]) pipe.on('error', () => undefined);
  child.on('error', () => undefined);
  const first = await new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      child.stdout.off('data', onData);
      child.stdout.pause();
      resolve(chunk);
    };
    child.stdout.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the port-forward relay exited (${code}): ${stderr.trim()}`)));
  });
  if (first[0] !== 0) {
    kill();
    throw new Error(first.subarray(1).toString('utf8') || 'cannot connect in the pod');
  }
  const rest = first.subarray(1);
  const duplex = new Duplex({
    read() {
      child.stdout.resume();
    },
    write(chunk, _enc, cb) {
      if (child.stdin.write(chunk)) cb();
      else child.stdin.once('drain', () => cb());
    },
    final(cb) {
      child.stdin.end();
      cb();
    },
    destroy(err, cb) {
      signal.removeEventListener('abort', kill);
      kill();
      cb(err);
    },
  });
  if (rest.length) duplex.push(rest);
  child.stdout.on('data', (chunk) => {
    if (!duplex.push(chunk)) child.stdout.pause();
  });
  child.stdout.on('end', () => duplex.push(null));
  child.once('exit', () => {
    signal.removeEventListener('abort', kill);
    duplex.push(null);
  });
  return duplex;
}

function dialHost(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}
