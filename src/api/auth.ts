/**
 * Who is calling: `Authorization: Bearer <key>` resolved to the client the key belongs to
 * (`IX_API_KEYS`, or the `ix_clients` table through the client directory), or to an operator
 * (`IX_ADMIN_KEYS`), who may act for every client. Keys of the variables are compared as SHA-256
 * digests with `timingSafeEqual` against every configured key, so neither a key's length nor
 * which key nearly matched shows in the timing. Keys of the table are looked up by their digest
 * in a hash map: what its timing could reveal is something of a SHA-256 digest, from which no key
 * can be found. The digests of keys that authenticated are kept by key (hashing every presented
 * key was ~2% of the API's CPU per submit); only such keys are, so a cache hit, the one timing
 * that differs, answers for a key that authenticates anyway, and every other key is hashed and
 * compared as before. Which client a digest belongs to, and whether it is disabled, is read afresh
 * on every request.
 */
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { keyDigest } from '../store/index.js';
import type { KeyHolder } from './directory.js';
import { ApiError } from './errors.js';
import { addLogContext } from './logging.js';

/** The caller: a client id bound to its key, an operator, or `open` when no keys are configured. */
export type Caller =
  | { kind: 'client'; clientId: string }
  | { kind: 'operator'; name: string }
  | { kind: 'open' };

const UNAUTHORIZED_HEADERS = { 'www-authenticate': 'Bearer realm="ix"' };

/** Keys whose digests are kept at most; past it the cache starts afresh. */
const KNOWN_KEYS_MAX = 1_000;

export interface Authenticator {
  /** Throws 401 for a missing or unknown key, or the key of a disabled client. */
  authenticate(authorization: string | undefined): Caller;
  /** Whether a key is needed now: false means open access. */
  keyed(): boolean;
}

/** Where keys of the `ix_clients` table are found (src/api/directory.ts). */
export interface KeyDirectory {
  holderOf(digest: Buffer): KeyHolder | undefined;
  readonly hasKeys: boolean;
  /** false until the table was first read: whether a key of it exists is unknown till then. */
  readonly loaded: boolean;
}

/** The table could not be read yet: which keys it holds, and so whether access is open, is unknown. */
function directoryUnread(): ApiError {
  return new ApiError(
    503,
    'unavailable',
    'the clients table could not be read yet (the database is unavailable); retry shortly',
    undefined,
    { 'retry-after': '1' },
  );
}

export interface AuthenticatorOptions {
  /** Keys kept as data, besides those of the variables. */
  directory?: KeyDirectory;
  /**
   * Whether access may be open when there is no key anywhere (loopback only). Off the loopback,
   * a table whose last key was revoked leaves every request refused, never everything open.
   */
  allowOpen?: boolean;
}

export function createAuthenticator(
  apiKeys: ReadonlyMap<string, string>,
  adminKeys: ReadonlyMap<string, string> = new Map(),
  options: AuthenticatorOptions = {},
): Authenticator {
  const { directory, allowOpen = true } = options;
  const entries: { caller: Caller; digest: Buffer }[] = [
    ...[...apiKeys].map(([clientId, key]) => ({
      caller: { kind: 'client', clientId } as const,
      digest: keyDigest(key),
    })),
    ...[...adminKeys].map(([name, key]) => ({
      caller: { kind: 'operator', name } as const,
      digest: keyDigest(key),
    })),
  ];
  if (entries.length === 0 && !directory && allowOpen)
    return { authenticate: () => ({ kind: 'open' }), keyed: () => false };
  const keyed = () => entries.length > 0 || directory?.hasKeys === true || !allowOpen;
  const knownDigests = new Map<string, Buffer>();
  const remember = (key: string, digest: Buffer) => {
    if (knownDigests.size >= KNOWN_KEYS_MAX) knownDigests.clear();
    knownDigests.set(key, digest);
  };
  return {
    keyed,
    authenticate(authorization) {
      const unread = directory !== undefined && !directory.loaded;
      if (!keyed()) {
        if (unread) throw directoryUnread();
        return { kind: 'open' };
      }
      const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? '');
      if (!match?.[1]) {
        throw new ApiError(
          401,
          'unauthorized',
          'send your API key as Authorization: Bearer <key>',
          undefined,
          UNAUTHORIZED_HEADERS,
        );
      }
      const key = match[1];
      const known = knownDigests.get(key);
      const presented = known ?? keyDigest(key);
      let found: Caller | null = null;
      // No early exit: every key is compared, whichever matches.
      for (const entry of entries) {
        if (timingSafeEqual(presented, entry.digest) && found === null) found = entry.caller;
      }
      if (found !== null) {
        if (!known) remember(key, presented);
        return found;
      }
      if (unread) throw directoryUnread();
      const holder = directory?.holderOf(presented);
      if (holder?.disabled) {
        throw new ApiError(
          401,
          'unauthorized',
          `client ${holder.clientId} is disabled`,
          undefined,
          UNAUTHORIZED_HEADERS,
        );
      }
      if (holder) {
        if (!known) remember(key, presented);
        return { kind: 'client', clientId: holder.clientId };
      }
      throw new ApiError(401, 'unauthorized', 'unknown API key', undefined, UNAUTHORIZED_HEADERS);
    },
  };
}

/** Whether the caller may act for `clientId` (open access and operators may act for anyone). */
export function mayActFor(caller: Caller, clientId: string): boolean {
  return caller.kind !== 'client' || caller.clientId === clientId;
}

/**
 * The operator's name, for what it does: only an operator key, or open access (no keys at all),
 * opens an operator endpoint. A client key is refused (403), whatever it may do elsewhere.
 */
export function requireOperator(caller: Caller): string {
  if (caller.kind === 'operator') return caller.name;
  if (caller.kind === 'open') return 'open';
  throw new ApiError(
    403,
    'forbidden',
    'this is a client key; operator endpoints take a key of IX_ADMIN_KEYS',
  );
}

/** Whether any key is configured in the variables (the table may hold more: see Authenticator.keyed). */
export function keyed(config: Config): boolean {
  return config.api.apiKeys.size + config.api.adminKeys.size > 0;
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/**
 * Open access is for a developer's own machine; anywhere else it would serve everyone's jobs.
 * `tableHasKeys`: the `ix_clients` table holds a key, which makes access keyed too.
 */
export function assertSafeExposure(config: Config, tableHasKeys = false): void {
  if (!keyed(config) && !tableHasKeys && !isLoopbackHost(config.api.host)) {
    throw new ConfigError(
      'IX_API_KEYS',
      `is required when the API listens on a non-loopback address (IX_HOST=${config.api.host}) and the ix_clients table holds no key; set IX_API_KEYS=client=key,…, add a client (ix clients add), or listen on 127.0.0.1`,
    );
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

/**
 * Resolves every request's caller in `scope` before its handler (401 for a missing or unknown
 * key). Callback-style: an async hook costs a promise per request.
 */
export function authenticateRequests(scope: FastifyInstance, authenticator: Authenticator): void {
  // Declared up front so every request object keeps one shape; the hook sets it before handlers.
  scope.decorateRequest('caller', null as never);
  scope.addHook('onRequest', (request, _reply, done) => {
    try {
      request.caller = authenticator.authenticate(request.headers.authorization);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (request.caller.kind === 'client') addLogContext(request, { client_id: request.caller.clientId });
    if (request.caller.kind === 'operator') addLogContext(request, { operator: request.caller.name });
    done();
  });
}
