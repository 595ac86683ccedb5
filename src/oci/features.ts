// What each runtime handler can do, from `<runtime> features` (the OCI
// runtime features document) and the kernel: recursive read-only mounts
// need the runtime's "rro" mount option and Linux 5.12 (mount_setattr);
// user namespaces need the "user" namespace and idmapped mounts
// (linux.mountExtensions.idmap.enabled). A runtime without the features
// command (runc before 1.1, crun before 1.9) supports neither.
import { execFile } from 'node:child_process';
import { release } from 'node:os';
import { kernelAtLeast } from './host.ts';
import { failedPrecondition, invalidArgument, quote } from '../errors.ts';

export interface HandlerFeatures {
  recursiveReadOnlyMounts: boolean;
  /** The runtime can run pods in user namespaces (userns + idmapped mounts). */
  runtimeUserNamespaces: boolean;
  /** Why a feature is missing, for error messages. */
  notes: string[];
}

export const NO_FEATURES: HandlerFeatures = { recursiveReadOnlyMounts: false, runtimeUserNamespaces: false, notes: [] };

/** The features document is small; anything larger is not one. */
const FEATURES_LIMIT = 1024 * 1024;
const FEATURES_TIMEOUT_MS = 10_000;

/** Reads the parts of an OCI features document tscri uses; wrong types count as absent. */
export function parseFeatures(text: string, kernel = release()): HandlerFeatures {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ...NO_FEATURES, notes: ["the runtime's features document is not JSON"] };
  }
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const root = obj(doc);
  const linux = obj(root.linux);
  const notes: string[] = [];
  const rroOption = strings(root.mountOptions).includes('rro');
  const rroKernel = kernelAtLeast(kernel, 5, 12);
  if (!rroOption) notes.push('the runtime does not offer the "rro" mount option');
  else if (!rroKernel) notes.push(`recursive read-only mounts need Linux 5.12 or later (this is ${kernel})`);
  const userns = strings(linux.namespaces).includes('user');
  const idmap = obj(obj(obj(linux.mountExtensions).idmap)).enabled === true;
  if (!userns) notes.push('the runtime does not support user namespaces');
  else if (!idmap) notes.push('the runtime does not support idmapped mounts (runc 1.2 or later, crun 1.9 or later)');
  return { recursiveReadOnlyMounts: rroOption && rroKernel, runtimeUserNamespaces: userns && idmap, notes };
}

/** Runs `<path> features`; a runtime that fails or lacks the command supports none of the features. */
export function probeFeatures(path: string): Promise<HandlerFeatures> {
  return new Promise((resolve) => {
    execFile(path, ['features'], { timeout: FEATURES_TIMEOUT_MS, maxBuffer: FEATURES_LIMIT, killSignal: 'SIGKILL' }, (err, stdout) => {
      if (err) return resolve({ ...NO_FEATURES, notes: [`${path} features failed: ${String(err.message).split('\n')[0]}`] });
      resolve(parseFeatures(stdout));
    });
  });
}

/** The features of every configured handler, probed once at start. */
export class RuntimeFeatures implements UserNamespaceSupport {
  private readonly byHandler = new Map<string, HandlerFeatures>();
  readonly defaultHandler: string;

  constructor(defaultHandler: string, entries: Iterable<[string, HandlerFeatures]> = []) {
    this.defaultHandler = defaultHandler;
    for (const [name, f] of entries) this.byHandler.set(name, f);
  }

  static async probe(handlers: Record<string, { path: string }>, defaultHandler: string): Promise<RuntimeFeatures> {
    const entries = await Promise.all(Object.entries(handlers).map(async ([name, h]) => [name, await probeFeatures(h.path)] as [string, HandlerFeatures]));
    return new RuntimeFeatures(defaultHandler, entries);
  }

  /** A handler's features; "" is the default handler. */
  get(handler: string): HandlerFeatures {
    return this.byHandler.get(handler || this.defaultHandler) ?? NO_FEATURES;
  }

  /**
   * Whether pods of this handler can have a user namespace. tscri needs the
   * runtime's idmapped mounts to give a pod's volumes and root filesystem
   * the pod's ids; it does not map ids itself yet, so this is false.
   */
  userNamespaces(handler: string): boolean {
    void handler;
    return false;
  }

  /** Why a pod of this handler cannot have a user namespace. */
  userNamespacesRefusal(handler: string): string {
    const f = this.get(handler);
    const name = handler || this.defaultHandler;
    if (!f.runtimeUserNamespaces) {
      const why = f.notes.find((n) => /user namespaces|idmapped|features/.test(n)) ?? 'the runtime does not support them';
      return `user namespaces (userns_options mode POD) are not supported by runtime handler ${quote(name)}: ${why}; run the pod without hostUsers: false`;
    }
    return `user namespaces (userns_options mode POD) are not supported by tscri yet with runtime handler ${quote(name)}; run the pod without hostUsers: false`;
  }

  /** The names Status lists: every handler, and "" for the default one. */
  names(): string[] {
    return [...this.byHandler.keys(), ''];
  }
}

/** What the sandbox service asks of the runtime handlers' features. */
export interface UserNamespaceSupport {
  userNamespaces(handler: string): boolean;
  userNamespacesRefusal(handler: string): string;
}

export const NO_USER_NAMESPACES: UserNamespaceSupport = {
  userNamespaces: () => false,
  userNamespacesRefusal: (handler) => `user namespaces (userns_options mode POD) are not supported by runtime handler ${quote(handler)}`,
};

/**
 * userns_options: absent or NODE is the node's user namespace; POD asks for
 * a user namespace of the pod's own, which is refused (never ignored) where
 * the handler cannot give one; CONTAINER and TARGET do not exist for users.
 */
export function checkUserNamespace(options: { mode?: string } | null | undefined, handler: string, support: UserNamespaceSupport): void {
  if (!options || options.mode === 'NODE') return;
  const mode = options.mode ?? 'POD';
  if (mode !== 'POD') throw invalidArgument(`userns_options mode ${quote(mode)} is not valid; user namespaces are POD or NODE`);
  if (!support.userNamespaces(handler)) throw failedPrecondition(support.userNamespacesRefusal(handler));
}
