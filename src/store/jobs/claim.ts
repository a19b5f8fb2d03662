/**
 * Taking jobs to run: a claim leases pending jobs to a worker and starts the oldest at once; a
 * start marks a claimed job `running` later. Claimed is not started (migrations/0004_claims.ts):
 * a worker that dies is charged an attempt only for the jobs it had started.
 */
import type { Job } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { hydrate, isoTimestamp, JOB_COLUMNS_OF_J, type JobRow, prepared } from './hydrate.js';

// `= ANY(ARRAY(…))` makes every step index lookups of exactly the picked rows: written as a
// join, the planner hashed the whole queue and sequentially scanned ix_jobs (docs/design.md,
// "Costs measured on the hot path").
// Only jobs whose time has come (`ready_at`: scheduled, or waiting out a retry's backoff), in the
// order they became ready: through the index on (ready_at, seq), a range scan of the ready rows
// alone (migrations/0007_retries.ts).
// The final SELECT reads ix_jobs as it was before `started` changed it (a statement sees one
// snapshot), so a started job's status, started_at and worker_id come from `started`.
export const CLAIM_SQL = `
  WITH candidates AS (
    SELECT seq, ready_at, job_id, input_bytes FROM ix_job_queue WHERE ready_at <= now()
    ORDER BY ready_at, seq LIMIT $1 FOR UPDATE SKIP LOCKED
  ), chosen AS (
    SELECT seq, ready_at, job_id, input_bytes, row_number() OVER (ORDER BY ready_at, seq) AS n
    FROM (SELECT *, sum(input_bytes) OVER (ORDER BY ready_at, seq) - input_bytes AS bytes_before FROM candidates) c
    WHERE $4::bigint IS NULL OR bytes_before < $4::bigint
  ), picked AS (
    DELETE FROM ix_job_queue WHERE seq = ANY (ARRAY (SELECT seq FROM chosen)) RETURNING job_id
  ), leased AS (
    INSERT INTO ix_job_leases (job_id, worker_id) SELECT job_id, $2 FROM picked
  ), started AS (
    UPDATE ix_jobs j SET status = 'running', started_at = now(), worker_id = $2
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM chosen WHERE n <= $3)) AND j.status = 'pending'
      AND j.rescues = 0
    RETURNING j.job_id, j.started_at
  )
  SELECT ${JOB_COLUMNS_OF_J.replace('j.status', "CASE WHEN s.job_id IS NULL THEN j.status ELSE 'running' END AS status").replace('j.started_at', 'coalesce(s.started_at, j.started_at) AS started_at').replace('j.worker_id', 'CASE WHEN s.job_id IS NULL THEN j.worker_id ELSE $2::uuid END AS worker_id')},
    j.claim_epoch, j.rescues, c.input_bytes, extract(epoch FROM now() - c.ready_at)::float8 AS waited_seconds
  FROM chosen c
  JOIN ix_jobs j ON j.job_id = c.job_id
  LEFT JOIN started s ON s.job_id = c.job_id
  WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM chosen)) AND j.status = 'pending'
  ORDER BY c.ready_at, c.seq`;

/** A job as one claim holds it: enough to start it, run it and record or hand back its outcome. */
export interface Claimed {
  job: Job;
  /** Whether the claim started it (status `running`), or it waits unstarted, still `pending`. */
  started: boolean;
  /** The job's `claim_epoch` at the claim: starting it applies only while that is unchanged. */
  claimEpoch: number;
  /** How often it was rescued from a worker that died or stalled while running it. */
  rescues: number;
  /** The stored size of its input, counted against the claimer's byte budget. */
  inputBytes: number;
  /** How long it had been ready (its `ready_at` passed) when claimed: its wait in the queue. */
  waitedSeconds: number;
}

export interface ClaimOptions {
  limit: number;
  /** Leases the jobs to this worker; null: only the age rule of `jobSweepOrphans` rescues them. */
  workerId: string | null;
  /** How many of the claimed jobs (the oldest) start at once; the rest wait, `pending`. */
  startNow: number;
  /** Stop before the inputs claimed exceed this many stored bytes (one job always fits). */
  maxInputBytes?: number | null;
}

/**
 * Claims up to `limit` pending jobs that are due, the longest ready first, in one statement: each is dispatched to at
 * most one caller (`FOR UPDATE SKIP LOCKED`) and leased to `workerId`, whose heartbeat keeps it.
 * The oldest `startNow` move to `running` (but a job once rescued from a dead worker, which the
 * claimer runs alone); the rest stay `pending` until `jobStartMany`, so a claimer that dies is
 * charged an attempt only for what it had started.
 */
export async function jobClaimMany(db: Db, options: ClaimOptions): Promise<Claimed[]> {
  const { limit, workerId, startNow } = options;
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`jobClaimMany: limit must be ≥ 1, got ${limit}`);
  const { rows } = await db.query<
    JobRow & { claim_epoch: number; rescues: number; input_bytes: number; waited_seconds: number }
  >(prepared('ix_job_claim', CLAIM_SQL, [limit, workerId, startNow, options.maxInputBytes ?? null]));
  return rows.map((row) => ({
    job: hydrate(row),
    started: row.status === 'running',
    claimEpoch: row.claim_epoch,
    rescues: row.rescues,
    inputBytes: row.input_bytes,
    waitedSeconds: row.waited_seconds,
  }));
}

// Strictly later than now: a row ready now but locked by another claim is that claim's, and
// waiting for it would be a busy loop. The index on (ready_at, seq) makes it one index probe.
const NEXT_READY_SQL = `
  SELECT ceil(extract(epoch FROM min(ready_at) - now()) * 1000)::float8 AS ms
  FROM ix_job_queue WHERE ready_at > now()`;

/**
 * Milliseconds until the first queued job that is not ready yet (scheduled, or waiting out a
 * retry's backoff) becomes so; null when none waits. An idle worker sleeps no longer than this.
 */
export async function jobNextReadyInMs(db: Db): Promise<number | null> {
  const { rows } = await db.query<{ ms: number | null }>(prepared('ix_job_next_ready', NEXT_READY_SQL, []));
  return rows[0]?.ms ?? null;
}

// A claim is held, unstarted, while its job is `pending` at the claim's attempt and epoch: every
// way back to the queue moves the epoch on. Running already, at the same attempt and epoch, by
// this worker: an earlier try of this very start that committed but whose answer was lost.
const START_SQL = `
  UPDATE ix_jobs j SET status = 'running', worker_id = $4,
    started_at = CASE WHEN j.status = 'pending' THEN now() ELSE j.started_at END
  FROM unnest($1::uuid[], $2::integer[], $3::integer[]) AS s(job_id, attempt, claim_epoch)
  WHERE j.job_id = s.job_id AND j.attempts = s.attempt AND j.claim_epoch = s.claim_epoch
    AND (j.status = 'pending' OR (j.status = 'running' AND j.worker_id = $4))
  RETURNING j.job_id, j.started_at`;

/**
 * Marks claimed jobs `running`: from then on a worker that dies costs them an attempt, and the
 * API shows them started. Applies only to a claim still held: one handed back meanwhile (its
 * epoch moved on) is left alone. Returns each started job's `started_at` by job id.
 */
export async function jobStartMany(
  db: Db,
  workerId: string | null,
  claims: readonly Pick<Claimed, 'job' | 'claimEpoch'>[],
): Promise<Map<string, string>> {
  if (claims.length === 0) return new Map();
  const { rows } = await db.query<{ job_id: string; started_at: string }>(
    prepared('ix_job_start_many', START_SQL, [
      claims.map((c) => c.job.job_id),
      claims.map((c) => c.job.attempts),
      claims.map((c) => c.claimEpoch),
      workerId,
    ]),
  );
  return new Map(rows.map((row) => [row.job_id, isoTimestamp(row.started_at)]));
}
