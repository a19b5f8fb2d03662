/**
 * Who is calling: `Authorization: Bearer <key>` resolved to the client the key belongs to
 * (`IX_API_KEYS`). Keys are compared as SHA-256 digests with `timingSafeEqual` against every
 * configured key, so neither a key's length nor which key nearly matched shows in the timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { ApiError } from './errors.js';

/** The caller: a client id bound to its key, or `open` when no keys are configured. */
export type Caller = { kind: 'client'; clientId: string } | { kind: 'open' };

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

const UNAUTHORIZED_HEADERS = { 'www-authenticate': 'Bearer realm="ix"' };

export interface Authenticator {
  /** Throws 401 for a missing or unknown key. */
  authenticate(authorization: string | undefined): Caller;
}

export function createAuthenticator(apiKeys: ReadonlyMap<string, string>): Authenticator {
  const entries = [...apiKeys].map(([clientId, key]) => ({ clientId, digest: digest(key) }));
  if (entries.length === 0) return { authenticate: () => ({ kind: 'open' }) };
  return {
    authenticate(authorization) {
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
      const presented = digest(match[1]);
      let found: string | null = null;
      // No early exit: every key is compared, whichever matches.
      for (const entry of entries) {
        if (timingSafeEqual(presented, entry.digest) && found === null) found = entry.clientId;
      }
      if (found === null) {
        throw new ApiError(401, 'unauthorized', 'unknown API key', undefined, UNAUTHORIZED_HEADERS);
      }
      return { kind: 'client', clientId: found };
    },
  };
}

/** Whether the caller may act for `clientId` (open access may act for anyone). */
export function mayActFor(caller: Caller, clientId: string): boolean {
  return caller.kind === 'open' || caller.clientId === clientId;
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/** Open access is for a developer's own machine; anywhere else it would serve everyone's jobs. */
export function assertSafeExposure(config: Config): void {
  if (config.api.apiKeys.size === 0 && !isLoopbackHost(config.api.host)) {
    throw new ConfigError(
      'IX_API_KEYS',
      `is required when the API listens on a non-loopback address (IX_HOST=${config.api.host}); set IX_API_KEYS=client=key,… or listen on 127.0.0.1`,
    );
  }
}
