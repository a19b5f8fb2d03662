/**
 * Each test file gets a database of its own, cloned from the migrated template, and each test
 * starts from empty tables. Pools are created inside the file's hooks, so none crosses event loops.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import { createPool } from '../../src/store/index.js';
import { HELD_JOBS } from '../../src/store/jobs/leases.js';
import { withDatabase } from './urls.js';

export interface TestDatabase {
  /** The file's pool (10 connections). */
  readonly pool: pg.Pool;
  /** Connection string of the file's database, for child processes and extra pools. */
  readonly url: string;
  readonly name: string;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('serverUrl') });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** How many jobs leases still hold (claimed, started or not): none once every claim has ended. */
export async function heldJobCount(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${HELD_JOBS} h`);
  return rows[0]!.n;
}

export async function truncateAll(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'ix\\_%' AND tablename <> 'ix_schema_migrations'`,
  );
  if (rows.length > 0) await pool.query(`TRUNCATE ${rows.map((r) => r.tablename).join(', ')}`);
}

/**
 * Options: `migrated: false` gives an empty database (for migration tests); `truncate: false`
 * keeps the rows from test to test (for a file whose tests follow one another, against one
 * running ix).
 */
export function useTestDatabase(options: { migrated?: boolean; truncate?: boolean } = {}): TestDatabase {
  const name = `ix_test_${randomBytes(6).toString('hex')}`;
  const state: { pool?: pg.Pool; url?: string } = {};
  beforeAll(async () => {
    const template = options.migrated === false ? 'template0' : inject('templateDatabase');
    await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
    state.url = withDatabase(inject('serverUrl'), name);
    state.pool = createPool(state.url, { max: 10 });
  });
  beforeEach(async () => {
    if (options.migrated !== false && options.truncate !== false && state.pool) await truncateAll(state.pool);
  });
  afterAll(async () => {
    await state.pool?.end();
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  return {
    get pool() {
      if (!state.pool) throw new Error('useTestDatabase: the pool exists only inside tests and hooks');
      return state.pool;
    },
    get url() {
      if (!state.url) throw new Error('useTestDatabase: the url exists only inside tests and hooks');
      return state.url;
    },
    name,
  };
}
