// Loopback registries for tests: Debian's docker-registry (distribution) on
// a free port with its own storage, and variants where docker-registry itself
// demands htpasswd basic auth or bearer tokens from a token server run here
// in node.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import koffi from 'koffi';
import { createServer } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRegistry {
  /** host:port, as used in image references. */
  host: string;
  url: string;
  /** The certificate to trust, for a TLS registry. */
  caFile?: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface RegistryOptions {
  /**
   * 'htpasswd': docker-registry itself demands HTTP basic auth (bcrypt
   * htpasswd file). 'token': it demands bearer tokens, signed JWTs issued by
   * a token server this helper runs in node.
   */
  auth?: 'htpasswd' | 'token';
  /** Serve the storage of another registry (read its images without pushing again). */
  shareStorageOf?: TestRegistry;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1, written to `caFile`. */
  tls?: boolean;
  /** How long to wait for the registry to answer; slow machines (an emulated VM) need more. */
  startTimeoutMs?: number;
}

export interface AuthRegistry extends TestRegistry {
  username: string;
  password: string;
  /** Scopes the token server was asked for. */
  tokenScopes: string[];
}

/** Starts docker-registry on 127.0.0.1 with storage in a temp dir. */
export async function startRegistry(): Promise<TestRegistry>;
export async function startRegistry(options: RegistryOptions & { auth: 'htpasswd' | 'token' }): Promise<AuthRegistry>;
export async function startRegistry(options: RegistryOptions): Promise<TestRegistry>;
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry | AuthRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'tscri-registry-'));
  const port = await freePort();
  const username = 'tester';
  const password = randomBytes(8).toString('hex');
  const cleanups: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })];
  const tokenScopes: string[] = [];
  const authConfig: string[] = [];
  if (options.auth === 'htpasswd') {
    await writeFile(join(dir, 'htpasswd'), `${username}:${bcrypt(password)}\n`);
    authConfig.push('auth:', '  htpasswd:', '    realm: tscri-test', `    path: ${join(dir, 'htpasswd')}`);
  } else if (options.auth === 'token') {
    const server = await startTokenServer(dir, username, password, tokenScopes);
    cleanups.unshift(server.stop);
    authConfig.push(
      'auth:',
      '  token:',
      `    realm: ${server.url}/token`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${server.certFile}`,
    );
  }
  const tlsConfig: string[] = [];
  let caFile: string | undefined;
  if (options.tls) {
    caFile = join(dir, 'registry.crt');
    selfSigned(join(dir, 'registry.key'), caFile, ['-addext', 'subjectAltName=IP:127.0.0.1']);
    tlsConfig.push('  tls:', `    certificate: ${caFile}`, `    key: ${join(dir, 'registry.key')}`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${options.shareStorageOf ? storageOf.get(options.shareStorageOf) : join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...tlsConfig,
      ...authConfig,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const ca = caFile ? await readFile(caFile) : undefined;
  const probe = () => (ca ? probeTls(`${url}/v2/`, ca) : fetch(`${url}/v2/`).then((r) => r.status));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    for (const c of cleanups) await c();
  };
  const until = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited: ${stderr}`);
    }
    // With auth, /v2/ answers 401: the registry is up.
    const up = await probe().then(
      (code) => code === 200 || code === 401,
      () => false,
    );
    if (up) break;
    if (Date.now() > until) {
      child.kill('SIGKILL');
      await stop();
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const registry: TestRegistry = { host: `127.0.0.1:${port}`, url, caFile, stop };
  storageOf.set(registry, options.shareStorageOf ? storageOf.get(options.shareStorageOf)! : join(dir, 'data'));
  return options.auth ? { ...registry, username, password, tokenScopes } : registry;
}

const storageOf = new WeakMap<TestRegistry, string>();

/** A self-signed certificate and its key, made with openssl. */
function selfSigned(keyFile: string, certFile: string, extra: string[] = []): void {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=tscri-test', ...extra],
    { stdio: 'ignore' },
  );
}

/** The status of a GET over TLS trusting only ca. */
function probeTls(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

/** A bcrypt hash, as docker-registry's htpasswd wants, from the system's libcrypt. */
function bcrypt(password: string): string {
  const lib = koffi.load('libcrypt.so.1');
  const gensalt = lib.func('const char *crypt_gensalt(const char *prefix, unsigned long count, const char *rbytes, int nrbytes)');
  const crypt = lib.func('const char *crypt(const char *phrase, const char *setting)');
  const salt = gensalt('$2b$', 5, null, 0) as string | null;
  const hash = salt ? (crypt(password, salt) as string | null) : null;
  if (!hash?.startsWith('$2b$')) throw new Error('libcrypt cannot make bcrypt hashes');
  return hash;
}

const TOKEN_SERVICE = 'tscri-test-registry';
const TOKEN_ISSUER = 'tscri-test-issuer';

/**
 * A token server as docker-registry's token auth expects: GET /token with
 * basic credentials, service and scope answers a JWT (RS256, its certificate
 * in x5c) granting the requested pull scope.
 */
async function startTokenServer(
  dir: string,
  username: string,
  password: string,
  scopes: string[],
): Promise<{ url: string; certFile: string; stop: () => Promise<void> }> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  selfSigned(keyFile, certFile);
  const key = createPrivateKey(await readFile(keyFile));
  const der = new X509Certificate(await readFile(certFile)).raw.toString('base64');
  const b64url = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    if (url.pathname !== '/token') return void res.writeHead(404).end();
    if (req.headers.authorization !== basic) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
    const scope = url.searchParams.get('scope') ?? '';
    scopes.push(scope);
    const access = scope
      ? [{ type: scope.split(':')[0], name: scope.split(':')[1], actions: (scope.split(':')[2] ?? '').split(',').filter((a) => a === 'pull') }]
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = b64url({ typ: 'JWT', alg: 'RS256', x5c: [der] });
    const claims = b64url({
      iss: TOKEN_ISSUER,
      sub: username,
      aud: url.searchParams.get('service') ?? '',
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), key).toString('base64url');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    certFile,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
