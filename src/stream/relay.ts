// Runs inside a pod's network namespace (started with nsenter by
// netns-dial.ts): connects to localhost:PORT (IPv4, then IPv6) and relays the
// connection over stdin/stdout. The first byte written tells the result:
// 0 connected, 1 failed (followed by the reason).
import { connect, type Socket } from 'node:net';

const port = Number(process.argv[2]);

function tryConnect(host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  let socket: Socket;
  try {
    socket = await tryConnect('127.0.0.1').catch(() => tryConnect('::1'));
  } catch (err) {
    process.stdout.write(Buffer.concat([Buffer.from([1]), Buffer.from(`cannot connect to localhost:${port} in the pod: ${(err as Error).message}`)]));
    process.exitCode = 1;
    return;
  }
  // The daemon's end of the pipes going away ends the relay quietly.
  process.stdout.on('error', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdout.write(Buffer.from([0]));
  process.stdin.pipe(socket);
  socket.pipe(process.stdout);
  socket.on('error', () => process.exit(0));
  socket.on('close', () => process.exit(0));
  process.stdin.on('end', () => socket.end());
}

void main();
