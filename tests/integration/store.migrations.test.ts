import { createHash } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  createPool,
  jobGet,
  jobInsertMany,
  jobPruneExpired,
  LATEST_VERSION,
  migrateDown,
  migrateUp,
  schemaVersion,
} from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { useTestDatabase } from '../support/db.js';
import { finishedJobs } from '../support/jobs.js';
import { eventually } from '../support/worker.js';

const db = useTestDatabase({ migrated: false });
/** Every version, in order. */
const VERSIONS = MIGRATIONS.map((m) => m.version);

/** Columns, indexes and constraints of every ix_* object: what up/down must reproduce exactly. */
async function catalog(pool: pg.Pool) {
  const { rows: columns } = await pool.query(`
    SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name LIKE 'ix\\_%' ORDER BY table_name, ordinal_position`);
  const { rows: indexes } = await pool.query(`
    SELECT tablename, indexname, indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename LIKE 'ix\\_%' ORDER BY indexname`);
  const { rows: constraints } = await pool.query(`
    SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text LIKE 'ix\\_%' ORDER BY conname`);
  const { rows: options } = await pool.query(`
    SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'ix\\_%'
    ORDER BY relname`);
  return { columns, indexes, constraints, options };
}

async function ixObjects(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ relname: string }>(
    `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'ix\\_%'`,
  );
  return rows.map((r) => r.relname);
}

describe('migrations', () => {
  it('up → down → up leaves the same catalog, and down leaves no ix_* object', async () => {
    expect(await schemaVersion(db.pool)).toBe(0);
    expect(await migrateUp(db.pool)).toEqual(VERSIONS);
    expect(await schemaVersion(db.pool)).toBe(LATEST_VERSION);
    const first = await catalog(db.pool);
    expect(first.columns.length).toBeGreaterThan(10);

    await migrateDown(db.pool, 0);
    expect(await ixObjects(db.pool)).toEqual([]);
    expect(await schemaVersion(db.pool)).toBe(0);

    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(first);
    expect(await migrateUp(db.pool)).toEqual([]);
  });

  it('down without a target reverts one migration', async () => {
    await migrateUp(db.pool);
    expect(await migrateDown(db.pool)).toEqual([LATEST_VERSION]);
    expect(await schemaVersion(db.pool)).toBe(VERSIONS.at(-2));
    await migrateUp(db.pool);
  });

  it('version 8 down keeps a cancelled job, as an error job whose error says cancelled; up again takes it back', async () => {
    await migrateUp(db.pool);
    const before = await catalog(db.pool);
    const { rows } = await db.pool.query<{ job_id: string }>(
      `INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input, status, finished_at, cancel_requested_at, response)
       VALUES (gen_random_uuid(), '00000000000000c8', 'acme', 'cancelled-1', '1', 'cancelled', now(), now(),
         '{"ix_id": "00000000000000c8", "error": "cancelled", "result": null}')
       RETURNING job_id`,
    );
    await expect(
      db.pool.query(`UPDATE ix_jobs SET cancel_requested_at = NULL WHERE job_id = $1`, [rows[0]!.job_id]),
    ).rejects.toThrow(/ix_jobs_outcome_check/);
    await migrateDown(db.pool, 7);
    const { rows: after } = await db.pool.query('SELECT status, response FROM ix_jobs');
    expect(after).toEqual([
      { status: 'error', response: { ix_id: '00000000000000c8', error: 'cancelled', result: null } },
    ]);
    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(before);
    await db.pool.query('DELETE FROM ix_jobs');
  });

  it('version 9 down keeps a retried job, its attempts and last error, dropping only its earlier runs', async () => {
    await migrateUp(db.pool);
    const before = await catalog(db.pool);
    await db.pool.query(
      `INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input, attempts, last_error, earlier_runs)
       VALUES (gen_random_uuid(), '00000000000000c9', 'acme', 'retried-1', '1', 1, 'HTTP 503',
         '[{"attempt": 1, "outcome": "retry", "error": "HTTP 503"}]')`,
    );
    await migrateDown(db.pool, 8);
    const { rows } = await db.pool.query('SELECT * FROM ix_jobs');
    expect(rows).toEqual([
      expect.objectContaining({ status: 'pending', attempts: 1, last_error: 'HTTP 503' }),
    ]);
    expect(rows[0]).not.toHaveProperty('earlier_runs');
    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(before);
    await db.pool.query('DELETE FROM ix_jobs');
  });

  it("version 15 down puts each stored response's ix_id back; up again, both forms read the same", async () => {
    await migrateUp(db.pool);
    const before = await catalog(db.pool);
    const [done, failed] = await finishedJobs(db.pool, null, ['done', 'error']);
    const stored = async () =>
      (
        await db.pool.query<{ job_id: string; response: unknown }>(
          'SELECT job_id, response FROM ix_jobs ORDER BY job_id',
        )
      ).rows;
    expect((await stored()).map((r) => r.response)).toEqual([
      { error: null, result: done!.response!.result },
      { error: failed!.response!.error, result: null },
    ]);
    await migrateDown(db.pool, 14);
    expect((await stored()).map((r) => r.response)).toEqual([done!.response, failed!.response]);
    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(before);
    expect(await jobGet(db.pool, done!.job_id)).toEqual(done);
    expect(await jobGet(db.pool, failed!.job_id)).toEqual(failed);
    await db.pool.query('DELETE FROM ix_jobs');
  });

  it('version 16 down writes the digest of every job stored without one; up again, replays answer as before', async () => {
    await migrateUp(db.pool);
    const before = await catalog(db.pool);
    const request = { ix_client_id: 'acme', request_id: 'digest-1', input: { b: 1, a: [2] } };
    const [first] = await jobInsertMany(db.pool, [{ request, callbackUrl: 'https://example.com/cb' }]);
    const digests = async () =>
      (await db.pool.query<{ d: string | null }>(`SELECT encode(request_digest, 'hex') AS d FROM ix_jobs`))
        .rows;
    expect(await digests()).toEqual([{ d: null }]);
    await migrateDown(db.pool, 15);
    const sha256 = createHash('sha256')
      .update('[{"a": [2], "b": 1}, "https://example.com/cb"]')
      .digest('hex');
    expect(await digests()).toEqual([{ d: sha256 }]);
    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(before);
    const [replay, other] = await jobInsertMany(db.pool, [
      { request, callbackUrl: 'https://example.com/cb' },
      { request, callbackUrl: 'https://other.example.com/cb' },
    ]);
    expect(replay).toMatchObject({ created: false, conflict: null, job: { job_id: first!.job!.job_id } });
    expect(other).toMatchObject({ created: false, conflict: { jobId: first!.job!.job_id } });
    await db.pool.query('DELETE FROM ix_job_queue');
    await db.pool.query('DELETE FROM ix_jobs');
  });

  it('version 10 down drops the tombstones and keeps every job; up again, pruning works as before', async () => {
    await migrateUp(db.pool);
    const before = await catalog(db.pool);
    const [kept, pruned] = await finishedJobs(db.pool, null, ['done', 'done']);
    const pass = (now: Date) =>
      jobPruneExpired(db.pool, {
        policy: { jobs: { done: 86_400, error: null, cancelled: null }, tombstones: 86_400 },
        batchSize: 10,
        now,
      });
    // Finished two days after the other: still inside its day of retention at the first pass.
    await db.pool.query(
      `UPDATE ix_jobs SET finished_at = finished_at + interval '2 days' WHERE job_id = $1`,
      [kept!.job_id],
    );
    expect((await pass(new Date(Date.now() + 2 * 86_400_000))).pruned.done).toBe(1);
    await migrateDown(db.pool, 9);
    expect(await ixObjects(db.pool)).not.toContain('ix_job_tombstones');
    const { rows } = await db.pool.query<{ job_id: string }>('SELECT job_id FROM ix_jobs');
    expect(rows).toEqual([{ job_id: kept!.job_id }]);
    await migrateUp(db.pool);
    expect(await catalog(db.pool)).toEqual(before);
    // The key of the job pruned before the down is free again: its tombstone went with the table.
    const [again] = await jobInsertMany(db.pool, [{ request: pruned!.request, callbackUrl: null }]);
    expect(again?.created).toBe(true);
    expect((await pass(new Date(Date.now() + 4 * 86_400_000))).pruned.done).toBe(1);
    await db.pool.query('DELETE FROM ix_job_tombstones');
    await db.pool.query('DELETE FROM ix_job_queue');
    await db.pool.query('DELETE FROM ix_jobs');
  });

  it('rejects an unknown target version with a message naming the range', async () => {
    await expect(migrateUp(db.pool, LATEST_VERSION + 1)).rejects.toThrow(
      `versions run from 0 to ${LATEST_VERSION}`,
    );
    await expect(migrateDown(db.pool, -1)).rejects.toThrow(/unknown migration version -1/);
  });

  it('two concurrent up runs from separate pools both succeed and apply each migration once', async () => {
    await migrateDown(db.pool, 0);
    const pools = [createPool(db.url, { max: 1 }), createPool(db.url, { max: 1 })];
    try {
      const results = await Promise.all(pools.map((p) => migrateUp(p)));
      expect(results.flat().sort((a, b) => a - b)).toEqual(VERSIONS);
      expect(await schemaVersion(db.pool)).toBe(LATEST_VERSION);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});

describe('statement timeout', () => {
  it('every pooled connection carries it, with TCP keepalive', async () => {
    const pool = createPool(db.url, { max: 1, statementTimeoutMs: 1_500 });
    try {
      const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
      expect(rows[0]?.statement_timeout).toBe('1500ms');
      expect(pool.options.keepAlive).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it('does not cut a migration, even one waiting its turn behind another longer than the timeout', async () => {
    await migrateDown(db.pool, 0);
    const pool = createPool(db.url, { max: 1, statementTimeoutMs: 100 });
    const other = await db.pool.connect();
    try {
      // Another process migrating: it holds the migration lock (as migrateUp takes it).
      await other.query('BEGIN');
      await other.query(`SELECT pg_advisory_xact_lock(hashtextextended('ix.migrate', 0))`);
      // Its failure is kept as the value, so it is reported by the expectation below.
      const migrating = migrateUp(pool).catch((error: unknown) => error);
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'`,
        );
        return rows.length === 1;
      }, 'migrateUp waiting for the migration lock');
      // The wait itself is the scenario: longer than the statement timeout.
      await new Promise((resolve) => setTimeout(resolve, 400));
      await other.query('COMMIT');
      expect(await migrating).toEqual(VERSIONS);
    } finally {
      other.release();
      await pool.end();
    }
  });
});

/** Jobs `prefix-g` of `client` for each g from `first` to `last`, queued and ready `readyIn` from now. */
async function queueJobs(
  pool: pg.Pool,
  prefix: string,
  first: number,
  last: number,
  readyIn = '0 s',
  client = 'acme',
) {
  await pool.query(
    `WITH j AS (
      INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input)
      SELECT gen_random_uuid(), lpad(to_hex(g), 16, '0'), $5, $1 || g, '{}'
      FROM generate_series($2::int, $3::int) g RETURNING job_id, client_id
    ) INSERT INTO ix_job_queue (job_id, client_id, ready_at) SELECT job_id, client_id, now() + $4::interval FROM j`,
    [`${prefix}-`, first, last, readyIn, client],
  );
}

const CLAIM_PARAMETERS = [10, null, 10, 1_000_000, null];

/** The plan of the claim statement exactly as the repository sends it. */
async function claimPlan(client: pg.PoolClient, explain = 'EXPLAIN'): Promise<string> {
  const { CLAIM_SQL } = await import('../../src/store/jobs/claim.js');
  const { rows } = await client.query<{ 'QUERY PLAN': string }>(`${explain} ${CLAIM_SQL}`, CLAIM_PARAMETERS);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

/**
 * The claim's EXPLAIN ANALYZE with its buffers, in a transaction rolled back so nothing stays
 * claimed, then the claim itself, as the repository sends it.
 */
async function analyzedThenClaimed(): Promise<{ plan: string; claimed: { client_id: string }[] }> {
  const { CLAIM_SQL } = await import('../../src/store/jobs/claim.js');
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const plan = await claimPlan(client, 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)');
    await client.query('ROLLBACK');
    const { rows } = await client.query<{ client_id: string }>(CLAIM_SQL, CLAIM_PARAMETERS);
    return { plan, claimed: rows };
  } finally {
    client.release();
  }
}

/** Pages the plan's scans of the queue's claim index touched, in all their loops. */
function queueIndexPages(plan: string): number {
  const lines = plan.split('\n');
  let pages = 0;
  lines.forEach((line, i) => {
    if (!/Index (Only )?Scan using ix_job_queue_fair_idx/.test(line)) return;
    for (const next of lines.slice(i + 1, i + 4)) {
      const buffers = /Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?/.exec(next);
      if (buffers) {
        pages += Number(buffers[1] ?? 0) + Number(buffers[2] ?? 0);
        break;
      }
    }
  });
  return pages;
}

describe('claim cost does not grow with finished jobs', () => {
  it('with 200k finished rows and 10 pending, the claim reads no finished row and scans no table whole', async () => {
    await migrateUp(db.pool);
    await db.pool.query(`
      INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input, status, started_at, finished_at, response)
      SELECT gen_random_uuid(), lpad(to_hex(g), 16, '0'), 'acme', 'done-' || g, '{}', 'done', now(), now(),
        jsonb_build_object('ix_id', lpad(to_hex(g), 16, '0'), 'error', null, 'result', null)
      FROM generate_series(1, 200000) g`);
    await queueJobs(db.pool, 'pending', 300_001, 300_010);
    await db.pool.query('ANALYZE');
    // The claim statement exactly as the repository sends it, inside a rolled-back transaction.
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { CLAIM_SQL } = await import('../../src/store/jobs/claim.js');
      const plan = () => claimPlan(client);
      // Finished rows are not in the queue at all; the job rows are reached by primary key.
      const small = await plan();
      expect(small).not.toMatch(/Seq Scan on ix_jobs/);
      expect(small).toMatch(/Index Scan using ix_jobs_pkey on ix_jobs/);
      const { rows: queued } = await client.query('SELECT count(*)::int AS n FROM ix_job_queue');
      expect(queued[0].n).toBe(10);
      // A deep backlog is read from the head of the queue's index, not scanned whole.
      await client.query(
        `INSERT INTO ix_job_queue (job_id, client_id) SELECT gen_random_uuid(), 'acme' FROM generate_series(1, 100000)`,
      );
      await client.query('ANALYZE ix_job_queue');
      const deep = await plan();
      expect(deep).toMatch(/Index Scan using ix_job_queue_fair_idx on ix_job_queue/);
      expect(deep).not.toMatch(/Seq Scan on ix_job(s|_queue)\b/);
      const claimed = await client.query(CLAIM_SQL, CLAIM_PARAMETERS);
      expect(claimed.rowCount).toBe(10);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  }, 120_000);

  it('with 100k jobs scheduled for later, the claim reads only the ready rows of the queue', async () => {
    await migrateUp(db.pool);
    await db.pool.query('TRUNCATE ix_jobs, ix_job_queue');
    await queueJobs(db.pool, 'later', 1, 100_000, '1 day');
    await queueJobs(db.pool, 'ready', 200_001, 200_005);
    await db.pool.query('ANALYZE');
    const { plan, claimed } = await analyzedThenClaimed();
    // Index range scans bounded by ready_at: the future rows are never read, so none is
    // filtered out either, and the scans touch a handful of pages, not the backlog's hundreds.
    expect(plan).toMatch(
      /Index Scan using ix_job_queue_fair_idx on ix_job_queue[^\n]*\n\s*Index Cond: \(\(client_id = [^\n]*\(ready_at <= now\(\)\)\)/,
    );
    expect(plan).not.toMatch(/Seq Scan on ix_job(s|_queue)\b/);
    expect(queueIndexPages(plan)).toBeLessThan(60);
    expect(claimed).toHaveLength(5);
  }, 120_000);
});

describe('a claim planned before the tables had statistics', () => {
  it('reads each claimed job by primary key and no table whole, never comparing every claimed job with every other', async () => {
    await migrateUp(db.pool);
    await db.pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_slots, ix_client_turns');
    const { CLAIM_SQL } = await import('../../src/store/jobs/claim.js');
    // A connection as a worker's pool makes it: its plans are made once, generic.
    const workerPool = createPool(db.url, { max: 1, genericPlans: true });
    const client = await workerPool.connect();
    try {
      // Planned while the tables are empty, as on a new database.
      await client.query(`PREPARE claim (integer, uuid, integer, bigint, integer) AS ${CLAIM_SQL}`);
      await client.query('EXPLAIN EXECUTE claim (1000, NULL, 10, NULL, NULL)');
      await queueJobs(db.pool, 'burst', 1, 2_000);
      await client.query('BEGIN');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE claim (1000, NULL, 10, NULL, NULL)',
      );
      await client.query('ROLLBACK');
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan).toMatch(/Index Scan using ix_jobs_pkey on ix_jobs j \(actual rows=1 loops=1000\)/);
      expect(plan).not.toMatch(/Seq Scan on ix_job(s|_queue)\b/);
      // Pairs a join compared and threw away: a claimed job against the ten started, at most.
      const discarded = [...plan.matchAll(/Rows Removed by Join Filter: (\d+)/g)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      expect(discarded).toBeLessThanOrEqual(1000 * 10);
    } finally {
      client.release();
      await workerPool.end();
    }
  }, 120_000);
});

describe('a fair claim does not read a flooding client’s backlog', () => {
  it('with 100,000 jobs of one client queued, a claim finds another client’s job reading a few pages', async () => {
    await migrateUp(db.pool);
    await db.pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_client_turns');
    await queueJobs(db.pool, 'flood', 1, 100_000, '0 s', 'flood');
    await queueJobs(db.pool, 'light', 200_001, 200_001, '0 s', 'light');
    await db.pool.query('ANALYZE');
    const { plan, claimed } = await analyzedThenClaimed();
    expect(plan).not.toMatch(/Seq Scan on ix_job(s|_queue)\b/);
    // The skip from one client to the next: index probes, one per client, not a scan.
    expect(plan).toMatch(
      /Index Only Scan using ix_job_queue_fair_idx on ix_job_queue q[^\n]*\n\s*Index Cond: \(client_id > /,
    );
    // Both clients' jobs are read through range scans of their own part of the index; the
    // flood's 100,000 entries would be ~400 pages: the whole claim touches a few dozen.
    expect(queueIndexPages(plan)).toBeLessThan(80);
    expect(claimed).toHaveLength(10);
    // The light client's one job is among the first two taken, not behind 100,000 others.
    expect(claimed.slice(0, 2).map((r) => r.client_id)).toContain('light');
  }, 120_000);
});
