import pg from 'pg';

/**
 * Anything that runs a query: a pool, a checked-out client, or a transaction's client. Every
 * repository function takes one from its caller, who owns the transaction (the seed's contract).
 */
export type Db = Pick<pg.ClientBase, 'query'>;

export interface CreatePoolOptions {
  max?: number;
  applicationName?: string;
}

export function createPool(connectionString: string, options: CreatePoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'ix',
    // A connection that cannot be had in 10 s means PostgreSQL is down or saturated; fail the
    // caller with a clear error instead of queueing forever.
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's connection can die (PostgreSQL restart, pg_terminate_backend); pg emits
  // that on the pool and would crash the process if nobody listened. The next query reconnects.
  pool.on('error', () => {});
  return pool;
}

/** Runs `work` in a transaction on a client of `pool`, committing on success. */
export async function withTransaction<T>(pool: pg.Pool, work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
