/**
 * The callback queue: the only code that reads or writes ix_callback_queue after a job ends
 * (rows are inserted by the statements that end a job, in jobs/complete.ts and jobs/sweep.ts, so
 * the duty to deliver is durable together with the outcome), and the only code that writes a
 * job's callback_attempts and callback_status. `attempt` in the queue counts the attempts made
 * so far; the attempt a claim hands out is that count + 1, and an outcome applies only while the
 * queue still says so (the fence), so a stale deliverer cannot clobber a newer attempt.
 */
import type { CallbackStatus, Job } from '../contracts/index.js';
import type { Db } from './db.js';
import { hydrate, JOB_COLUMNS_OF_J, type JobRow, prepared } from './jobs/hydrate.js';

export interface CallbackClaim {
  job: Job;
  /** 1 for the first attempt; pass it back to `callbackRecordAttempt`. */
  attempt: number;
}

export interface CallbackClaimOptions {
  /** How long the claim is held: another deliverer may take it over only after this. */
  leaseSeconds: number;
  /** The first attempt waits this long after the job ended (the schedule's first delay). */
  firstDelaySeconds?: number;
  /** The clock, injected so tests need no sleeping; default: the database's now(). */
  now?: Date | null;
}

// The lease is the claim: pushing next_attempt_at forward hides the row from other deliverers
// until it runs out, so one that died mid-delivery leaves the attempt to be made again, and no
// lock is held across the HTTP request. SKIP LOCKED keeps concurrent claims from waiting on or
// taking each other's rows. The job rows are read by their ids (`= ANY`), whatever the plan: one
// made on a small table could hash ix_jobs whole for every claim (see jobs/complete.ts).
const CALLBACK_CLAIM_SQL = `
  WITH due AS (
    SELECT q.job_id FROM ix_callback_queue q
    WHERE q.next_attempt_at <= coalesce($3::timestamptz, now())
      AND (q.attempt > 0 OR q.next_attempt_at <= coalesce($3::timestamptz, now()) - make_interval(secs => $4))
    ORDER BY q.next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE ix_callback_queue q
    SET next_attempt_at = coalesce($3::timestamptz, now()) + make_interval(secs => $2)
    FROM due WHERE q.job_id = due.job_id
    RETURNING q.job_id, q.attempt
  )
  SELECT leased.attempt AS queue_attempt, ${JOB_COLUMNS_OF_J}
  FROM leased JOIN ix_jobs j ON j.job_id = leased.job_id
  WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM leased))`;

/** Claims up to `limit` due deliveries in one statement; none is handed to two callers at once. */
export async function callbackClaimDue(
  db: Db,
  limit: number,
  options: CallbackClaimOptions,
): Promise<CallbackClaim[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`callbackClaimDue: limit must be ≥ 1, got ${limit}`);
  if (!(options.leaseSeconds > 0))
    throw new RangeError(`callbackClaimDue: leaseSeconds must be > 0, got ${options.leaseSeconds}`);
  const { rows } = await db.query<JobRow & { queue_attempt: number }>(
    prepared('ix_callback_claim_due', CALLBACK_CLAIM_SQL, [
      limit,
      options.leaseSeconds,
      options.now ?? null,
      options.firstDelaySeconds ?? 0,
    ]),
  );
  return rows.map((row) => ({ job: hydrate(row), attempt: row.queue_attempt + 1 }));
}

export interface CallbackAttemptOutcome {
  /** The HTTP status received, null when none was (refused, network error, timeout). */
  statusCode: number | null;
  /** Why the attempt did not deliver; null when it did. */
  error: string | null;
  /** `delivered` or `failed` ends the delivery; a number schedules the next attempt that many seconds on. */
  next: CallbackStatus | { retryInSeconds: number };
  now?: Date | null;
}

// One statement: the fenced queue change (delete when final, else the next attempt) and, only if
// it applied, the attempt appended to the job's log and the final callback_status. `status` is
// never touched. `at` is formatted like Date.toISOString() so the Job JSON has one timestamp form.
const CALLBACK_RECORD_SQL = `
  WITH params AS (
    SELECT coalesce($6::timestamptz, now()) AS now, $5::text AS final
  ), dequeued AS (
    DELETE FROM ix_callback_queue q USING params p
    WHERE q.job_id = $1 AND q.attempt = $2 - 1 AND p.final IS NOT NULL
    RETURNING q.job_id
  ), rescheduled AS (
    UPDATE ix_callback_queue q SET attempt = $2, next_attempt_at = p.now + make_interval(secs => $7)
    FROM params p
    WHERE q.job_id = $1 AND q.attempt = $2 - 1 AND p.final IS NULL
    RETURNING q.job_id
  ), applied AS (
    SELECT job_id FROM dequeued UNION ALL SELECT job_id FROM rescheduled
  )
  UPDATE ix_jobs j SET
    callback_attempts = coalesce(j.callback_attempts, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
      'attempt', $2::integer,
      'at', to_char(p.now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'status_code', $3::integer,
      'error', $4::text)),
    callback_status = coalesce(p.final, j.callback_status)
  FROM applied a CROSS JOIN params p
  WHERE j.job_id = $1 AND j.job_id = a.job_id`;

/**
 * Records attempt `attempt` of a job's delivery: appends it to `callback_attempts` and either
 * ends the delivery (`callback_status`, queue row gone) or schedules the next attempt. Applies
 * only while the queue is still at this attempt; returns whether it did.
 */
export async function callbackRecordAttempt(
  db: Db,
  jobId: string,
  attempt: number,
  outcome: CallbackAttemptOutcome,
): Promise<boolean> {
  const final = typeof outcome.next === 'string' ? outcome.next : null;
  const retryIn = typeof outcome.next === 'string' ? 0 : outcome.next.retryInSeconds;
  if (!(retryIn >= 0))
    throw new RangeError(`callbackRecordAttempt: retryInSeconds must be ≥ 0, got ${retryIn}`);
  const { rowCount } = await db.query(CALLBACK_RECORD_SQL, [
    jobId,
    attempt,
    outcome.statusCode,
    outcome.error,
    final,
    outcome.now ?? null,
    retryIn,
  ]);
  return rowCount === 1;
}
