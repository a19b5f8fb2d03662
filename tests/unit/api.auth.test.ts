import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ApiError, createAuthenticator, isLoopbackHost } from '../../src/api/index.js';

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['::1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
    ['example.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe('createAuthenticator with a client directory', () => {
  const KEY = 'ix_a-key-of-the-table-0123456789';
  const directory = (holders: Record<string, { clientId: string; disabled: boolean }>, loaded = true) => ({
    loaded,
    get hasKeys() {
      return Object.keys(holders).length > 0;
    },
    holderOf: (digest: Buffer) => holders[digest.toString('hex')],
  });
  const digestOf = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');
  const bearer = (key: string) => `Bearer ${key}`;
  const statusOf = (run: () => unknown) => {
    try {
      run();
      return 'ok';
    } catch (error) {
      return (error as ApiError).statusCode;
    }
  };

  it('a key of the table is its client; a disabled one answers 401 naming it', () => {
    const auth = createAuthenticator(new Map(), new Map(), {
      directory: directory({ [digestOf(KEY)]: { clientId: 'acme', disabled: false } }),
    });
    expect(auth.keyed()).toBe(true);
    expect(auth.authenticate(bearer(KEY))).toEqual({ kind: 'client', clientId: 'acme' });
    expect(statusOf(() => auth.authenticate(undefined))).toBe(401);
    expect(statusOf(() => auth.authenticate(bearer('ix_another-key-0123456789')))).toBe(401);
    const disabled = createAuthenticator(new Map(), new Map(), {
      directory: directory({ [digestOf(KEY)]: { clientId: 'acme', disabled: true } }),
    });
    expect(() => disabled.authenticate(bearer(KEY))).toThrow('client acme is disabled');
  });

  it('open on loopback while the table holds no key; refused off loopback', () => {
    const empty = directory({});
    expect(createAuthenticator(new Map(), new Map(), { directory: empty }).authenticate(undefined)).toEqual({
      kind: 'open',
    });
    const exposed = createAuthenticator(new Map(), new Map(), { directory: empty, allowOpen: false });
    expect(exposed.keyed()).toBe(true);
    expect(statusOf(() => exposed.authenticate(undefined))).toBe(401);
  });

  it('a key that authenticated before is judged afresh by the table: disabled, then revoked', () => {
    const holders: Record<string, { clientId: string; disabled: boolean }> = {
      [digestOf(KEY)]: { clientId: 'acme', disabled: false },
    };
    const auth = createAuthenticator(new Map(), new Map(), { directory: directory(holders) });
    expect(auth.authenticate(bearer(KEY))).toEqual({ kind: 'client', clientId: 'acme' });
    expect(auth.authenticate(bearer(KEY))).toEqual({ kind: 'client', clientId: 'acme' });
    holders[digestOf(KEY)] = { clientId: 'acme', disabled: true };
    expect(() => auth.authenticate(bearer(KEY))).toThrow('client acme is disabled');
    delete holders[digestOf(KEY)];
    holders[digestOf('ix_a-second-key-0123456789')] = { clientId: 'acme', disabled: false };
    expect(() => auth.authenticate(bearer(KEY))).toThrow('unknown API key');
  });

  it('before the table is read: keys of the variables work, anything else answers 503', () => {
    const unread = directory({}, false);
    const open = createAuthenticator(new Map(), new Map(), { directory: unread });
    expect(statusOf(() => open.authenticate(undefined))).toBe(503);
    const keyed = createAuthenticator(new Map([['s', 'static-key-0123456789']]), new Map(), {
      directory: unread,
    });
    expect(keyed.authenticate(bearer('static-key-0123456789'))).toEqual({ kind: 'client', clientId: 's' });
    expect(statusOf(() => keyed.authenticate(bearer(KEY)))).toBe(503);
  });
});
