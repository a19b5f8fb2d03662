/**
 * Retention: finished jobs past their status's retention are pruned, each leaving a tombstone
 * (tombstones.ts) that keeps its key taken; tombstones past their own period go, freeing the key.
 *
 * Two statements per batch, in this order, because a submit must always see the job or its
 * tombstone. The tombstones are committed first, while the jobs are still there; a job row
 * is deleted only once its tombstone is visible to every snapshot of the database that could
 * still be inserting its key. A submit whose snapshot is older than the tombstone finds the job
 * row still there (ON CONFLICT, the replay path); one whose snapshot is newer sees the
 * tombstone (the insert's NOT EXISTS). Deleting both in one transaction would let a submit that
 * took its snapshot before the prune's commit, and met the doomed row's lock after it, insert
 * the key again: the request would run twice (tests/integration/retention.test.ts races them).
 */
import type pg from 'pg';
import type { FinalStatus } from '../../contracts/index.js';
import { sleep } from '../../time.js';
import { jobIdAt } from '../ids.js';
import { jobRequestDigest } from './digest.js';

/** How long each kind of record is kept, in seconds; null: forever. */
export interface RetentionPolicy {
  /** Finished jobs, from `finished_at`, by their final status. */
  jobs: Record<FinalStatus, number | null>;
  /** Tombstones, from the prune: their key stays taken this long. */
  tombstones: number | null;
}

export interface PruneOptions {
  policy: RetentionPolicy;
  /** The clock, injected so tests need no sleeping; default: the database's now(). */
  now?: Date | null;
  /** Jobs per statement: each statement is a short transaction of its own. */
  batchSize: number;
  /** Count what a pass would remove, and remove nothing. */
  dryRun?: boolean;
  /** How long a pass waits for older snapshots to end before leaving jobs to the next pass. */
  settleMs?: number;
  /** Ends the pass after the statement in flight (a stopping process); what it did stands. */
  signal?: AbortSignal;
  /**
   * The share of its time (1–100 %) the pass spends running statements: after each batch it
   * sleeps the rest, so that a backlog does not take the CPU from submits, claims and
   * completions. Default 100: no pause.
   */
  dutyPercent?: number;
}

export interface PruneResult {
  /** Another process held the pruner's lock: this pass did nothing. */
  skipped: boolean;
  /** Jobs removed (dry run: that would be), by final status. */
  pruned: Record<FinalStatus, number>;
  /** Tombstones removed (dry run: that would be): their keys are free. */
  tombstonesExpired: number;
  /** Jobs whose tombstone is written but whose row waits for older snapshots: the next pass removes them. */
  waiting: number;
  /** Statements run, and the longest one (ms): what the pass held rows locked for at most. */
  statements: number;
  longestStatementMs: number;
}

// One process prunes at a time: a second one skips its pass instead of waiting. The lock is a
// transaction's, held open on a connection of its own for the pass, not a session's: behind a
// transaction pooler a session lock stays on whichever server connection took it (the unlock may
// run on another, and that one's next client would hold the lock unknowingly). The holder is
// idle in transaction with no snapshot and no transaction id (checked in pg_stat_activity:
// backend_xmin and backend_xid are null), so it holds back neither vacuum nor DELETE_SETTLED_SQL.
const LOCK_SQL = `SELECT pg_try_advisory_xact_lock(hashtextextended('ix.prune', 0)) AS locked`;

// The expired jobs of a stretch of the primary key, oldest first. Job ids are UUIDv7s, ordered by
// creation time, and a job finishes after it is created, so every job finished before the
// earliest cutoff lies below `bound`: the scan reads the primary key's range and nothing newer,
// and needs no index on `finished_at` (which would make every completion a non-HOT update).
// A job whose callback is still queued is kept; a pending or running one has no retention (NULL).
const EXPIRED = `
  params AS (
    SELECT coalesce($1::timestamptz, now()) AS now, $2::double precision AS done, $3::double precision AS error,
      $4::double precision AS cancelled
  ), expired AS (
    SELECT j.job_id, j.client_id, j.request_id, j.ix_id, j.status, j.finished_at, ${jobRequestDigest('j')} AS request_digest
    FROM ix_jobs j CROSS JOIN params p
    WHERE j.job_id > $5::uuid AND j.job_id < $6::uuid
      AND j.finished_at < p.now - make_interval(secs => CASE j.status
        WHEN 'done' THEN p.done WHEN 'error' THEN p.error WHEN 'cancelled' THEN p.cancelled END)
      AND NOT EXISTS (SELECT 1 FROM ix_callback_queue c WHERE c.job_id = j.job_id)
    ORDER BY j.job_id
    LIMIT $7
  )`;

// A job already tombstoned by an earlier pass is returned again (its row waits to be deleted).
const TOMBSTONE_SQL = `
  WITH ${EXPIRED}, buried AS (
    INSERT INTO ix_job_tombstones
      (client_id, request_id, job_id, ix_id, status, finished_at, pruned_at, key_free_after, request_digest)
    SELECT e.client_id, e.request_id, e.job_id, e.ix_id, e.status, e.finished_at, p.now,
      p.now + make_interval(secs => $8::double precision), e.request_digest
    FROM expired e CROSS JOIN params p
    ON CONFLICT DO NOTHING
  )
  SELECT job_id FROM expired`;

const COUNT_EXPIRED_SQL = `
  WITH ${EXPIRED}
  SELECT status, count(*)::integer AS n FROM expired GROUP BY status`;

// A tombstone is visible to every snapshot once its transaction ended before the oldest snapshot
// still held began: its xmin then precedes every backend_xmin (age(): older is larger). Only
// client sessions of this database insert jobs; autovacuum's snapshots are not theirs to wait for.
const DELETE_SETTLED_SQL = `
  WITH horizon AS (
    SELECT max(age(backend_xmin)) AS oldest FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND backend_xmin IS NOT NULL
  ), settled AS (
    SELECT t.job_id FROM ix_job_tombstones t CROSS JOIN horizon h
    WHERE t.job_id = ANY($1::uuid[]) AND (h.oldest IS NULL OR age(t.xmin) > h.oldest)
  )
  DELETE FROM ix_jobs j USING settled s WHERE j.job_id = s.job_id
  RETURNING j.job_id, j.status`;

// Oldest first, through the index on key_free_after; a tombstone whose job row is still there
// (its retention shorter than a pass) waits for it.
const EXPIRED_TOMBSTONES = `
  SELECT t.client_id, t.request_id FROM ix_job_tombstones t
  WHERE t.key_free_after < coalesce($1::timestamptz, now())
    AND NOT EXISTS (SELECT 1 FROM ix_jobs j WHERE j.job_id = t.job_id)
  ORDER BY t.key_free_after
  LIMIT $2`;
const EXPIRE_TOMBSTONES_SQL = `
  DELETE FROM ix_job_tombstones d USING (${EXPIRED_TOMBSTONES}) x
  WHERE d.client_id = x.client_id AND d.request_id = x.request_id`;
const COUNT_EXPIRED_TOMBSTONES_SQL = `SELECT count(*)::integer AS n FROM (${EXPIRED_TOMBSTONES}) x`;

const LOWEST_JOB_ID = '00000000-0000-0000-0000-000000000000';
const SETTLE_POLL_MS = 20;

function emptyResult(): PruneResult {
  return {
    skipped: false,
    pruned: { done: 0, error: 0, cancelled: 0 },
    tombstonesExpired: 0,
    waiting: 0,
    statements: 0,
    longestStatementMs: 0,
  };
}

/**
 * One pass of the pruner on `pool`, of which it takes two connections: one holds the lock (see
 * LOCK_SQL), the other runs the pass. Expired jobs become tombstones and leave ix_jobs, batch by
 * batch, then expired tombstones go. Another process already pruning: `skipped`, and nothing
 * done. Every statement is a short transaction of its own, holding at most `batchSize` finished
 * rows, which no submit, claim or completion writes.
 */
export async function jobPruneExpired(pool: pg.Pool, options: PruneOptions): Promise<PruneResult> {
  // With one connection the pass would wait for the lock's, for ever.
  if (pool.options.max < 2) throw new RangeError('jobPruneExpired: the pool must allow 2 connections');
  const result = emptyResult();
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    const { rows } = await holder.query<{ locked: boolean }>(LOCK_SQL);
    if (!rows[0]?.locked) return { ...result, skipped: true };
    const client = await pool.connect();
    try {
      return await prunePass(client, options, result);
    } finally {
      client.release();
    }
  } finally {
    // Ends the transaction, and so releases the lock; a failed connection is not reused.
    await holder.query('ROLLBACK').then(
      () => holder.release(),
      (error: Error) => holder.release(error),
    );
  }
}

async function prunePass(
  client: pg.PoolClient,
  options: PruneOptions,
  result: PruneResult,
): Promise<PruneResult> {
  const run = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) => {
    const started = performance.now();
    const answer = await client.query<R>(text, values);
    result.statements += 1;
    result.longestStatementMs = Math.max(result.longestStatementMs, performance.now() - started);
    return answer;
  };
  // Sleeps after a batch in proportion to the time its statements took.
  const pause = async (since: number) => {
    const duty = options.dutyPercent ?? 100;
    if (duty < 100) await sleep(((performance.now() - since) * (100 - duty)) / duty);
  };
  await pruneJobs(run, pause, options, result);
  await expireTombstones(run, pause, options, result);
  return result;
}

type Run = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;
type Pause = (since: number) => Promise<void>;

async function pruneJobs(run: Run, pause: Pause, options: PruneOptions, result: PruneResult): Promise<void> {
  const { policy, batchSize } = options;
  const kept = Object.values(policy.jobs).filter((seconds): seconds is number => seconds !== null);
  if (kept.length === 0) return;
  const now = options.now ?? null;
  const bound = jobIdAt((now ?? new Date()).getTime() - Math.min(...kept) * 1000 + 1);
  const params = (after: string) => [
    now,
    policy.jobs.done,
    policy.jobs.error,
    policy.jobs.cancelled,
    after,
    bound,
  ];
  if (options.dryRun) {
    const { rows } = await run<{ status: FinalStatus; n: number }>(COUNT_EXPIRED_SQL, [
      ...params(LOWEST_JOB_ID),
      null,
    ]);
    for (const row of rows) result.pruned[row.status] = row.n;
    return;
  }
  const remove = async (ids: string[]): Promise<string[]> => {
    if (ids.length === 0) return ids;
    const { rows } = await run<{ job_id: string; status: FinalStatus }>(DELETE_SETTLED_SQL, [ids]);
    for (const row of rows) result.pruned[row.status] += 1;
    const deleted = new Set(rows.map((row) => row.job_id));
    return ids.filter((id) => !deleted.has(id));
  };
  // Waits for older snapshots to end (polling), at most settleMs; returns what still waits.
  const settle = async (ids: string[]): Promise<string[]> => {
    const deadline = performance.now() + (options.settleMs ?? 10_000);
    let left = await remove(ids);
    while (left.length > 0 && performance.now() < deadline && !options.signal?.aborted) {
      await sleep(SETTLE_POLL_MS);
      left = await remove(left);
    }
    return left;
  };
  let after = LOWEST_JOB_ID;
  let waiting: string[] = [];
  let more = true;
  while (more && !options.signal?.aborted) {
    const batchStarted = performance.now();
    const { rows } = await run<{ job_id: string }>(TOMBSTONE_SQL, [
      ...params(after),
      batchSize,
      policy.tombstones,
    ]);
    const ids = rows.map((row) => row.job_id).sort();
    // The previous batch had this one's statement time to settle; this one waits its turn.
    waiting = [...(await remove(waiting)), ...ids];
    more = ids.length === batchSize;
    if (more) after = ids.at(-1)!;
    await pause(batchStarted);
    // A long transaction elsewhere holds an old snapshot: wait for it before tombstoning more,
    // and leave the rest to the next pass if it will not end (the jobs answer as before).
    if (waiting.length >= 10 * batchSize) {
      waiting = await settle(waiting);
      if (waiting.length > 0) break;
    }
  }
  if (!more) waiting = await settle(waiting);
  result.waiting = waiting.length;
}

async function expireTombstones(
  run: Run,
  pause: Pause,
  options: PruneOptions,
  result: PruneResult,
): Promise<void> {
  const now = options.now ?? null;
  if (options.dryRun) {
    const { rows } = await run<{ n: number }>(COUNT_EXPIRED_TOMBSTONES_SQL, [now, null]);
    result.tombstonesExpired = rows[0]?.n ?? 0;
    return;
  }
  while (!options.signal?.aborted) {
    const batchStarted = performance.now();
    const { rowCount } = await run(EXPIRE_TOMBSTONES_SQL, [now, options.batchSize]);
    result.tombstonesExpired += rowCount ?? 0;
    if ((rowCount ?? 0) < options.batchSize) return;
    await pause(batchStarted);
  }
}
