/** Recording outcomes: a job ends `done` or `error`, fenced on the claim that ran it. */
import type { ResponseIX } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { prepared } from './hydrate.js';

export interface Outcome {
  jobId: string;
  /** The `attempts` the job had when claimed: an outcome applies only to that attempt. */
  attempt: number;
  /** The `claim_epoch` it had when claimed (0 if never handed back unstarted). */
  claimEpoch?: number;
  /** When its pipeline was called, for a job whose start was never marked: its `started_at`. */
  startedAt?: string | null;
  response: ResponseIX;
  /** Must agree with the response: `done` iff `response.error` is null; a contradiction is refused. */
  status: 'done' | 'error';
  /** `response` as JSON, when the caller has written it already (and so knows it can be). */
  responseJson?: string;
}

/** How an outcome is told apart from another attempt's outcome of the same job. */
export const outcomeKey = (jobId: string, attempt: number): string => `${jobId}/${attempt}`;

// An outcome belongs to the claim that ran it: the job is still held at the same attempt and
// claim epoch, either `running` or claimed but never marked started (a worker runs fresh jobs
// without waiting for that mark; see jobStartMany). A lease row exists while a job is claimed,
// and every way back to the queue deletes it and moves the attempt or the epoch on.
const COMPLETE_SQL = `
  WITH outcome AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
      AS o(job_id uuid, attempt integer, claim_epoch integer, started_at timestamptz, status text, response jsonb)
  ), finished AS (
    UPDATE ix_jobs j SET status = o.status, response = o.response, finished_at = now(),
      started_at = coalesce(j.started_at, least(o.started_at, now()), now())
    FROM outcome o
    WHERE j.job_id = o.job_id AND j.attempts = o.attempt AND j.claim_epoch = o.claim_epoch
      AND (j.status = 'running'
        OR (j.status = 'pending' AND EXISTS (SELECT 1 FROM ix_job_leases l WHERE l.job_id = j.job_id)))
    RETURNING j.job_id, o.attempt, j.callback_url
  ), released AS (
    DELETE FROM ix_job_leases l USING finished WHERE l.job_id = finished.job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM finished WHERE callback_url IS NOT NULL
  )
  SELECT job_id, attempt FROM finished`;

/**
 * Records outcomes, many in one statement. Each applies only while its job is still held by the
 * claim that ran it (same attempt and claim epoch), so terminal states never change and a worker
 * whose job was rescued and claimed again cannot overwrite the newer attempt. Returns the
 * `outcomeKey`s that applied. A job with a callback URL is queued for delivery in the same
 * statement, so the outcome and the duty to deliver it are durable together. One outcome
 * PostgreSQL cannot store fails the whole statement: callers record a failed batch's outcomes
 * one by one to find it.
 */
export async function jobCompleteMany(db: Db, outcomes: readonly Outcome[]): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const parts = outcomes.map((o) => {
    if ((o.status === 'done') !== (o.response.error === null)) {
      throw new Error(
        `job ${o.jobId}: status ${o.status} contradicts response.error ${JSON.stringify(o.response.error)}`,
      );
    }
    // Ids, numbers, status and timestamps are plain tokens: only the response needs JSON.stringify.
    const response = o.responseJson ?? JSON.stringify(o.response);
    const startedAt = o.startedAt ? `"${o.startedAt}"` : 'null';
    return `{"job_id":"${o.jobId}","attempt":${o.attempt},"claim_epoch":${o.claimEpoch ?? 0},"started_at":${startedAt},"status":"${o.status}","response":${response}}`;
  });
  const { rows } = await db.query<{ job_id: string; attempt: number }>(
    prepared('ix_job_complete_many', COMPLETE_SQL, [`[${parts.join(',')}]`]),
  );
  return new Set(rows.map((r) => outcomeKey(r.job_id, r.attempt)));
}
