import type pg from 'pg';
import { withTransaction } from './db.js';
import { MIGRATIONS, type Migration } from './migrations/index.js';

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

export const LATEST_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

// Every migrating process takes this transaction-scoped lock first, so two `ix migrate up` (or
// two `ix start`) at once run one after the other and the second finds nothing left to do.
const LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtextextended('ix.migrate', 0))`;
// A migration may rewrite a large table, or wait its turn behind another process's: neither may
// be cut by the pool's statement_timeout (IX_DB_STATEMENT_TIMEOUT_SECONDS). LOCAL: for this
// transaction only, so the connection goes back to the pool with its usual timeout.
const NO_STATEMENT_TIMEOUT_SQL = 'SET LOCAL statement_timeout = 0';
const ENSURE_TABLE_SQL = `
  CREATE TABLE IF NOT EXISTS ix_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`;

/** The highest applied migration, 0 when the schema is absent. */
export async function schemaVersion(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows: exists } = await db.query<{ present: boolean }>(
    `SELECT to_regclass('ix_schema_migrations') IS NOT NULL AS present`,
  );
  if (!exists[0]?.present) return 0;
  const { rows } = await db.query<{ version: number }>(
    'SELECT coalesce(max(version), 0) AS version FROM ix_schema_migrations',
  );
  return rows[0]?.version ?? 0;
}

async function appliedVersions(db: pg.ClientBase): Promise<Set<number>> {
  await db.query(ENSURE_TABLE_SQL);
  const { rows } = await db.query<{ version: number }>('SELECT version FROM ix_schema_migrations');
  return new Set(rows.map((r) => r.version));
}

function target(version: number | undefined, fallback: number): number {
  const to = version ?? fallback;
  if (!Number.isInteger(to) || to < 0 || to > LATEST_VERSION) {
    throw new MigrationError(`unknown migration version ${to}: versions run from 0 to ${LATEST_VERSION}`);
  }
  return to;
}

async function apply(db: pg.ClientBase, migration: Migration, direction: 'up' | 'down'): Promise<void> {
  try {
    await db.query(migration[direction]);
  } catch (error) {
    throw new MigrationError(
      `migration ${migration.version} (${migration.name}) ${direction} failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Runs `work` in a transaction holding the migration lock, with no statement timeout. */
function migrating<T>(pool: pg.Pool, work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, async (db) => {
    await db.query(NO_STATEMENT_TIMEOUT_SQL);
    await db.query(LOCK_SQL);
    return work(db);
  });
}

/** Applies every migration up to `to` (default: the latest); returns the versions applied. */
export async function migrateUp(pool: pg.Pool, to?: number): Promise<number[]> {
  const goal = target(to, LATEST_VERSION);
  return migrating(pool, async (db) => {
    const applied = await appliedVersions(db);
    const done: number[] = [];
    for (const migration of MIGRATIONS) {
      if (migration.version > goal || applied.has(migration.version)) continue;
      await apply(db, migration, 'up');
      await db.query('INSERT INTO ix_schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      done.push(migration.version);
    }
    return done;
  });
}

/**
 * Reverts migrations above `to` (default: one step back); returns the versions reverted. At 0
 * nothing of ix is left, not even its bookkeeping table.
 */
export async function migrateDown(pool: pg.Pool, to?: number): Promise<number[]> {
  return migrating(pool, async (db) => {
    const applied = await appliedVersions(db);
    const current = Math.max(0, ...applied);
    const goal = target(to, Math.max(0, current - 1));
    const done: number[] = [];
    for (const migration of [...MIGRATIONS].reverse()) {
      if (migration.version <= goal || !applied.has(migration.version)) continue;
      await apply(db, migration, 'down');
      await db.query('DELETE FROM ix_schema_migrations WHERE version = $1', [migration.version]);
      done.push(migration.version);
    }
    if (goal === 0) await db.query('DROP TABLE ix_schema_migrations');
    return done;
  });
}
