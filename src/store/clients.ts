/**
 * Clients as data: `ix_clients` (weight, limits, disabled) and `ix_client_keys` (their API keys,
 * as SHA-256 digests only). Every change here sends CLIENTS_CHANNEL in its own transaction, so an
 * API process hears of it only once it is committed, and each re-reads the whole directory.
 * A key is never passed to this module: only its digest, which cannot be turned back into it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { type Db, withTransaction } from './db.js';

/** The channel every change to a client is told on (payload: its id); API processes reload. */
export const CLIENTS_CHANNEL = 'ix_clients_changed';

/** New keys start with this, so a leaked one is recognisable (e.g. by secret scanners). */
export const CLIENT_KEY_PREFIX = 'ix_';

/** A key id is this many hex characters of the key's digest: enough to tell keys apart. */
export const KEY_ID_LENGTH = 12;

/** SHA-256 of the key's UTF-8: what ix_client_keys holds, and what the API looks keys up by. */
export function keyDigest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** The public id of a key: the start of its digest, never any part of the key itself. */
export function keyIdOf(digest: Buffer): string {
  return digest.toString('hex').slice(0, KEY_ID_LENGTH);
}

/** A new key: 32 random bytes, base64url, after CLIENT_KEY_PREFIX. */
export function clientKeyGenerate(): string {
  return CLIENT_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** A client's own settings; a null limit means the server-wide default (IX_CLIENT_MAX_PENDING, …). */
export interface ClientSettings {
  weight: number;
  maxRunning: number | null;
  maxPending: number | null;
  ratePerSecond: number | null;
}

export interface ClientKeyInfo {
  keyId: string;
  createdAt: Date;
}

export interface ClientRecord extends ClientSettings {
  clientId: string;
  disabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  keys: ClientKeyInfo[];
}

/** Everything an API process needs: each client, and the digest of each key with its client. */
export interface ClientsSnapshot {
  clients: ClientRecord[];
  keys: { digest: Buffer; clientId: string }[];
}

export class ClientNotFoundError extends Error {
  constructor(readonly clientId: string) {
    super(`no client "${clientId}"`);
    this.name = 'ClientNotFoundError';
  }
}

export class ClientExistsError extends Error {
  constructor(readonly clientId: string) {
    super(`client "${clientId}" already exists`);
    this.name = 'ClientExistsError';
  }
}

/** A revoke that names no key of the client, or would leave it without one. */
export class ClientKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientKeyError';
  }
}

interface ClientRow {
  client_id: string;
  weight: number;
  max_running: number | null;
  max_pending: number | null;
  rate_per_second: number | null;
  disabled: boolean;
  created_at: Date;
  updated_at: Date;
}

interface KeyRow {
  key_digest: Buffer;
  client_id: string;
  created_at: Date;
}

const CLIENT_COLUMNS =
  'client_id, weight, max_running, max_pending, rate_per_second, disabled, created_at, updated_at';

function recordOf(row: ClientRow, keys: readonly KeyRow[]): ClientRecord {
  return {
    clientId: row.client_id,
    weight: row.weight,
    maxRunning: row.max_running,
    maxPending: row.max_pending,
    ratePerSecond: row.rate_per_second,
    disabled: row.disabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    keys: keys.map((k) => ({ keyId: keyIdOf(k.key_digest), createdAt: k.created_at })),
  };
}

/**
 * Every client and key digest, ordered by client id: two statements, each on one table, so no
 * lock is held on one while waiting for the other's (a TRUNCATE or DROP of both, taking them in
 * the other order, would deadlock with a join). The keys are read first: a client added between
 * the two reads shows without its new key, and its change's notification makes the next reload
 * see both; a key whose client is not in the clients read is left out.
 */
export async function clientsRead(db: Db): Promise<ClientsSnapshot> {
  const keyRows = await db.query<KeyRow>(
    'SELECT key_digest, client_id, created_at FROM ix_client_keys ORDER BY created_at, key_digest',
  );
  const clientRows = await db.query<ClientRow>(`SELECT ${CLIENT_COLUMNS} FROM ix_clients ORDER BY client_id`);
  const keysOf = new Map<string, KeyRow[]>();
  for (const k of keyRows.rows) keysOf.set(k.client_id, [...(keysOf.get(k.client_id) ?? []), k]);
  const clients = clientRows.rows.map((row) => recordOf(row, keysOf.get(row.client_id) ?? []));
  const known = new Set(clients.map((c) => c.clientId));
  return {
    clients,
    keys: keyRows.rows
      .filter((k) => known.has(k.client_id))
      .map((k) => ({ digest: k.key_digest, clientId: k.client_id })),
  };
}

/** One client, or null. */
export async function clientGet(db: Db, clientId: string): Promise<ClientRecord | null> {
  const { rows } = await db.query<ClientRow>(
    `SELECT ${CLIENT_COLUMNS} FROM ix_clients WHERE client_id = $1`,
    [clientId],
  );
  const row = rows[0];
  if (!row) return null;
  const keys = await db.query<KeyRow>(
    'SELECT key_digest, client_id, created_at FROM ix_client_keys WHERE client_id = $1 ORDER BY created_at, key_digest',
    [clientId],
  );
  return recordOf(row, keys.rows);
}

async function notifyChanged(db: Db, clientId: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [CLIENTS_CHANNEL, clientId]);
}

/** Adds a client with one key (its digest). Throws ClientExistsError for an id already taken. */
export async function clientAdd(
  pool: pg.Pool,
  clientId: string,
  settings: Partial<ClientSettings>,
  digest: Buffer,
): Promise<ClientRecord> {
  return withTransaction(pool, async (db) => {
    const inserted = await db.query(
      `INSERT INTO ix_clients (client_id, weight, max_running, max_pending, rate_per_second)
       VALUES ($1, coalesce($2, 1), $3, $4, $5) ON CONFLICT (client_id) DO NOTHING`,
      [
        clientId,
        settings.weight ?? null,
        settings.maxRunning ?? null,
        settings.maxPending ?? null,
        settings.ratePerSecond ?? null,
      ],
    );
    if (inserted.rowCount === 0) throw new ClientExistsError(clientId);
    await db.query('INSERT INTO ix_client_keys (key_digest, client_id) VALUES ($1, $2)', [digest, clientId]);
    await notifyChanged(db, clientId);
    return (await clientGet(db, clientId)) as ClientRecord;
  });
}

/**
 * Changes the settings given (a key absent from `changes` is left as it is; a limit given as
 * null returns to the server default).
 */
export async function clientUpdate(
  pool: pg.Pool,
  clientId: string,
  changes: Partial<ClientSettings>,
): Promise<ClientRecord> {
  const has = (key: keyof ClientSettings) => key in changes;
  return withTransaction(pool, async (db) => {
    const updated = await db.query(
      `UPDATE ix_clients SET
         weight = CASE WHEN $2 THEN $3::integer ELSE weight END,
         max_running = CASE WHEN $4 THEN $5::integer ELSE max_running END,
         max_pending = CASE WHEN $6 THEN $7::integer ELSE max_pending END,
         rate_per_second = CASE WHEN $8 THEN $9::double precision ELSE rate_per_second END,
         updated_at = now()
       WHERE client_id = $1`,
      [
        clientId,
        has('weight'),
        changes.weight ?? null,
        has('maxRunning'),
        changes.maxRunning ?? null,
        has('maxPending'),
        changes.maxPending ?? null,
        has('ratePerSecond'),
        changes.ratePerSecond ?? null,
      ],
    );
    if (updated.rowCount === 0) throw new ClientNotFoundError(clientId);
    await notifyChanged(db, clientId);
    return (await clientGet(db, clientId)) as ClientRecord;
  });
}

/** Disables or enables a client. */
export async function clientSetDisabled(pool: pg.Pool, clientId: string, disabled: boolean): Promise<void> {
  await withTransaction(pool, async (db) => {
    const updated = await db.query(
      'UPDATE ix_clients SET disabled = $2, updated_at = now() WHERE client_id = $1',
      [clientId, disabled],
    );
    if (updated.rowCount === 0) throw new ClientNotFoundError(clientId);
    await notifyChanged(db, clientId);
  });
}

/** Adds a key (its digest) to a client; returns its key id. */
export async function clientKeyAdd(pool: pg.Pool, clientId: string, digest: Buffer): Promise<string> {
  return withTransaction(pool, async (db) => {
    // Locks the client, so a concurrent revoke counts this key.
    const found = await db.query('SELECT 1 FROM ix_clients WHERE client_id = $1 FOR UPDATE', [clientId]);
    if (found.rowCount === 0) throw new ClientNotFoundError(clientId);
    await db.query('INSERT INTO ix_client_keys (key_digest, client_id) VALUES ($1, $2)', [digest, clientId]);
    await db.query('UPDATE ix_clients SET updated_at = now() WHERE client_id = $1', [clientId]);
    await notifyChanged(db, clientId);
    return keyIdOf(digest);
  });
}

/**
 * Revokes the client's key whose id is `keyId`. Refuses (ClientKeyError) to revoke its last key
 * unless `force`: a client without a key can no longer submit, which is what disabling is for.
 */
export async function clientKeyRevoke(
  pool: pg.Pool,
  clientId: string,
  keyId: string,
  force = false,
): Promise<void> {
  await withTransaction(pool, async (db) => {
    const found = await db.query('SELECT 1 FROM ix_clients WHERE client_id = $1 FOR UPDATE', [clientId]);
    if (found.rowCount === 0) throw new ClientNotFoundError(clientId);
    const { rows } = await db.query<{ key_digest: Buffer }>(
      'SELECT key_digest FROM ix_client_keys WHERE client_id = $1',
      [clientId],
    );
    const matching = rows.filter((r) => keyIdOf(r.key_digest) === keyId.toLowerCase());
    const [match] = matching;
    if (!match) throw new ClientKeyError(`client "${clientId}" has no key ${keyId} (see ix clients list)`);
    if (rows.length === 1 && !force)
      throw new ClientKeyError(
        `${keyId} is the last key of client "${clientId}"; add another first, or revoke it with --force`,
      );
    await db.query('DELETE FROM ix_client_keys WHERE key_digest = $1', [match.key_digest]);
    await db.query('UPDATE ix_clients SET updated_at = now() WHERE client_id = $1', [clientId]);
    await notifyChanged(db, clientId);
  });
}

/**
 * How many of the client's jobs are queued (pending, whether ready or scheduled), counting at
 * most `upTo`: a read of at most that many entries of the queue's (client_id, …) index.
 */
export async function clientQueuedCount(db: Db, clientId: string, upTo: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM (SELECT 1 FROM ix_job_queue WHERE client_id = $1 LIMIT $2) AS queued',
    [clientId, upTo],
  );
  return rows[0]?.n ?? 0;
}
