import pg from 'pg';
import type { Logger } from '../log.js';
import { settlesWithin } from '../time.js';

/**
 * Anything that runs a query: a pool, a checked-out client, or a transaction's client. Every
 * repository function takes one from its caller, who owns the transaction and so decides what
 * commits together.
 */
export type Db = Pick<pg.ClientBase, 'query'>;

export interface CreatePoolOptions {
  /** Connections at most: IX_DB_POOL_SIZE for ix's own pools, whatever a test or tool needs for others. */
  max: number;
  applicationName?: string;
  /** PostgreSQL's `statement_timeout` on every connection; the server's own setting when absent. */
  statementTimeoutMs?: number;
  /** Told of each idle connection lost (a restart, a failover, pg_terminate_backend), once. */
  logger?: Pick<Logger, 'warn'>;
  /**
   * Plan each named statement once per connection (`plan_cache_mode=force_generic_plan`), for a
   * worker's pool. PostgreSQL kept re-planning the claim at every execution (its generic plan's
   * estimate never beat the custom ones'): 2–7 ms of planning against 0.1 ms, which capped a worker
   * claiming one job per freed slot at ~160 claims a second. Every worker statement finds its rows
   * by key or by an index range of its own. Not for the API's: an operator's search leaves it to
   * the planner to choose by how many jobs the client searched for has.
   */
  genericPlans?: boolean;
}

export function createPool(connectionString: string, options: CreatePoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max,
    application_name: options.applicationName ?? 'ix',
    // Timestamps are read back as text in UTC (see isoTimestamp in jobs/hydrate.ts). No JIT: the
    // claim's estimated cost (its CTEs' row estimates multiply) passes jit_above_cost, and compiling
    // it took 4 s of a 4.1 s claim of 1,000 jobs, at every execution; without, 24 ms
    // (EXPLAIN ANALYZE, PostgreSQL 15). ix's statements are short ones JIT never pays off for.
    options: `-c TimeZone=UTC -c jit=off${options.genericPlans ? ' -c plan_cache_mode=force_generic_plan' : ''}`,
    ...(options.statementTimeoutMs === undefined ? {} : { statement_timeout: options.statementTimeoutMs }),
    // A connection that vanished without a FIN or RST (a host gone, a NAT or firewall that forgot
    // it) is otherwise never noticed: a statement on it waits forever. Probes start after 10 s of
    // silence instead of the OS's default two hours.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // A connection that cannot be had in 10 s means PostgreSQL is down or saturated; fail the
    // caller with a clear error instead of queueing forever.
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's connection can die (PostgreSQL restart, pg_terminate_backend); pg emits
  // that on the pool, once per connection, and would crash the process if nobody listened. The
  // next query reconnects. Not the error itself: pg attaches its client, password included.
  const database = withoutPassword(connectionString);
  pool.on('error', (error) => {
    options.logger?.warn({ database, reason: failureReason(error) }, 'database connection lost');
  });
  return pool;
}

/**
 * Ends the pool, waiting at most `ms` for its clients to come back: a statement stuck behind a
 * lock would otherwise hold a stopping process open for as long as the lock is held.
 */
export async function closePool(pool: pg.Pool, ms = 5_000): Promise<void> {
  await settlesWithin(pool.end(), ms);
}

/** Runs `work` in a transaction on a client of `pool`, committing on success. */
export async function withTransaction<T>(pool: pg.Pool, work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await inTransaction(client, () => work(client));
  } finally {
    client.release();
  }
}

/** Runs `work` in a transaction on `client`, a connection the caller holds; commits on success. */
export async function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** The first connection failed: the server is down, unreachable, or refused these credentials. */
export class DatabaseUnreachableError extends Error {
  constructor(
    /** The connection string without its password, safe to print. */
    readonly target: string,
    /** The error code (ECONNREFUSED, ENOTFOUND, 28P01, …) or PostgreSQL's message. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot connect to ${target} (${reason})`, options);
    this.name = 'DatabaseUnreachableError';
  }
}

/** The connection string with its password blanked, for messages and logs. */
export function withoutPassword(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    url.password = '';
    return url.toString();
  } catch {
    return '(unparseable connection string)';
  }
}

export function failureReason(error: unknown): string {
  const { code, message, errors } = error as { code?: string; message?: string; errors?: unknown[] };
  // A host with several addresses fails with an AggregateError whose parts carry the codes.
  const first = errors?.[0] as { code?: string } | undefined;
  // PostgreSQL's own refusals (bad password, no such database) say more than their SQLSTATE.
  if (code && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('E')) return message ?? code;
  return code ?? first?.code ?? message ?? String(error);
}

/**
 * A pool whose first connection has been made, so a wrong or unreachable server is reported at
 * start-up (as a DatabaseUnreachableError) instead of on the first request.
 */
export async function openPool(connectionString: string, options: CreatePoolOptions): Promise<pg.Pool> {
  const pool = createPool(connectionString, options);
  try {
    const client = await pool.connect();
    client.release();
    return pool;
  } catch (error) {
    await pool.end().catch(() => {});
    throw new DatabaseUnreachableError(withoutPassword(connectionString), failureReason(error), {
      cause: error,
    });
  }
}

/** Creates `database` unless it exists; says whether it did. For the embedded server's own database. */
export async function databaseCreateIfMissing(db: Db, database: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (rowCount) return false;
  await db.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  return true;
}
