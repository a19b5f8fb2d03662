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
   * by key or by an index range of its own, so such a pool also plans without sequential scans
   * (`enable_seqscan=off`): a plan made once, while a table was empty (a new database, a first
   * start), scanned ix_jobs whole at every claim until autovacuum's first ANALYZE of it replaced
   * the plan: 975 pages and 3.4–4.7 ms a claim against 0.75–0.85 ms (`bench:processes`). The one
   * worker statement that reads a table whole (the sweep, over ix_job_leases) reads a small one,
   * whose index costs as much to read. Not for the API's: an operator's search leaves it to the
   * planner to choose by how many jobs the client searched for has.
   */
  genericPlans?: boolean;
  /**
   * The connection string is a transaction pooler's (IX_DB_POOLER=transaction): no startup
   * parameters. PgBouncer 1.18 refuses a connection that sends `options` ("unsupported startup
   * parameter: options"), and one it were told to ignore would not reach the server connections
   * it hands out per transaction. The statement timeout is then the server's to set (see
   * checkServerSettings); the time zone does not matter (isoTimestamp reads any offset).
   */
  transactionPooler?: boolean;
  /**
   * false: every statement is sent unnamed (IX_DB_PREPARED_STATEMENTS), even those `prepared()`
   * names. Default true.
   */
  preparedStatements?: boolean;
}

/**
 * A client that sends every statement unnamed. A named one is parsed once per connection and then
 * only bound, which a transaction pooler before PgBouncer 1.21 breaks: the client's next
 * transaction may run on a server connection that never saw the Parse, and another client handed
 * the one that did fails with "prepared statement … already exists" (shown against PgBouncer 1.18
 * in tests/integration/pgbouncer.test.ts). Dropping the name here, per pool, rather than in each
 * caller keeps one pool on a pooler and another on a direct connection right in one process.
 */
class UnnamedStatementsClient extends pg.Client {
  override query(config: unknown, ...rest: unknown[]): never {
    const unnamed =
      config !== null && typeof config === 'object' && 'name' in config && !('submit' in config)
        ? { ...config, name: undefined }
        : config;
    return (super.query as (...args: unknown[]) => never)(unnamed, ...rest);
  }
}

export function createPool(connectionString: string, options: CreatePoolOptions): pg.Pool {
  const startupParameters = options.transactionPooler
    ? {}
    : {
        // Timestamps are read back as text in UTC, the fast path of isoTimestamp (jobs/hydrate.ts).
        // No JIT: the claim's estimated cost (its CTEs' row estimates multiply) passes
        // jit_above_cost, and compiling it took 4 s of a 4.1 s claim of 1,000 jobs, at every
        // execution; without, 24 ms (EXPLAIN ANALYZE, PostgreSQL 15). ix's statements are short
        // ones JIT never pays off for. Behind a pooler the server's settings must say so
        // (checkServerSettings warns).
        options: `-c TimeZone=UTC -c jit=off${options.genericPlans ? ' -c plan_cache_mode=force_generic_plan -c enable_seqscan=off' : ''}`,
        ...(options.statementTimeoutMs === undefined
          ? {}
          : { statement_timeout: options.statementTimeoutMs }),
      };
  const pool = new pg.Pool({
    connectionString,
    max: options.max,
    // PgBouncer keeps application_name per client and sets it on each server connection it hands over.
    application_name: options.applicationName ?? 'ix',
    ...startupParameters,
    ...(options.preparedStatements === false ? { Client: UnnamedStatementsClient } : {}),
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
  } catch (error) {
    await pool.end().catch(() => {});
    throw new DatabaseUnreachableError(withoutPassword(connectionString), failureReason(error), {
      cause: error,
    });
  }
  await checkServerSettings(pool, options).catch((error: unknown) =>
    options.logger?.warn({ reason: failureReason(error) }, 'could not read the server settings'),
  );
  return pool;
}

/** The server's own settings, as a session gets them when ix sets none: the timeout in ms (0: none). */
async function serverSettings(db: Db): Promise<{ statementTimeoutMs: number; jit: boolean }> {
  const { rows } = await db.query<{ ms: number; jit: boolean }>(
    `SELECT (SELECT setting::integer FROM pg_settings WHERE name = 'statement_timeout') AS ms,
      current_setting('jit') = 'on' AS jit`,
  );
  return { statementTimeoutMs: rows[0]?.ms ?? 0, jit: rows[0]?.jit ?? false };
}

/**
 * Behind a transaction pooler ix cannot set its session settings per connection (see
 * CreatePoolOptions.transactionPooler): says so, once each, when the server's are not the ones ix
 * needs (its statement timeout, and no JIT), so that neither is lost silently.
 */
export async function checkServerSettings(pool: pg.Pool, options: CreatePoolOptions): Promise<void> {
  if (!options.transactionPooler) return;
  const server = await serverSettings(pool);
  if (options.statementTimeoutMs !== undefined && server.statementTimeoutMs !== options.statementTimeoutMs) {
    options.logger?.warn(
      { server_statement_timeout_ms: server.statementTimeoutMs, configured_ms: options.statementTimeoutMs },
      "behind a transaction pooler the statement timeout is the server's: set it for ix's role (ALTER ROLE … SET statement_timeout)",
    );
  }
  if (server.jit) {
    options.logger?.warn(
      { server_jit: 'on' },
      "behind a transaction pooler JIT is the server's to turn off, and a claim compiled by it takes seconds: set it for ix's role (ALTER ROLE … SET jit = off)",
    );
  }
}

/** Creates `database` unless it exists; says whether it did. For the embedded server's own database. */
export async function databaseCreateIfMissing(db: Db, database: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (rowCount) return false;
  await db.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  return true;
}
