/**
 * What operators do to a job: read it with their actions on it, and retry one that failed. Like
 * every other transition of a job, its statement lives with the others in this folder.
 */
import type { Job } from '../../contracts/index.js';
import type { OperatorAction } from '../../contracts/operators.js';
import type { Db } from '../db.js';
import { jobNotifyPending } from '../notify.js';
import { hydrate, JOB_COLUMNS, type JobRow, RAW_TIMESTAMPS } from './hydrate.js';
import { appendRun } from './runs.js';

/** A job with what operators did to it. */
export async function jobGetWithActions(
  db: Db,
  jobId: string,
): Promise<{ job: Job; operatorActions: OperatorAction[] } | null> {
  const { rows } = await db.query<JobRow & { operator_actions: OperatorAction[] | null }>({
    text: `SELECT ${JOB_COLUMNS}, operator_actions FROM ix_jobs WHERE job_id = $1`,
    values: [jobId],
    types: RAW_TIMESTAMPS,
  });
  const row = rows[0];
  return row ? { job: hydrate(row), operatorActions: row.operator_actions ?? [] } : null;
}

/** A job an operator asked to retry had not failed: it is pending, running, done or cancelled. */
export class JobNotFailedError extends Error {
  constructor(readonly job: Job) {
    super(`job ${job.job_id} is ${job.status}; only a job that ended in error can be retried`);
    this.name = 'JobNotFailedError';
  }
}

// A failed job back to the queue with a fresh budget of runs: `max_attempts` becomes the runs it
// has had plus its own budget (else the server's, $2), so the budget rule (jobs/runs.ts) needs no
// exception. The run that ended it moves into `earlier_runs` as it ended (a run a rescue abandoned
// is there already: its `started_at` was cleared), and its error into `last_error`, as a retry
// leaves a job. `claim_epoch + 1`, like every way back to the queue. A delivery of the failed
// outcome still due is dropped: the job will have another outcome to deliver.
const RETRY_SQL = `
  WITH retried AS (
    UPDATE ix_jobs j SET
      status = 'pending',
      attempts = j.attempts + CASE WHEN j.started_at IS NULL THEN 0 ELSE 1 END,
      max_attempts = j.attempts + CASE WHEN j.started_at IS NULL THEN 0 ELSE 1 END + coalesce(j.max_attempts, $2),
      claim_epoch = j.claim_epoch + 1,
      earlier_runs = CASE WHEN j.started_at IS NULL THEN j.earlier_runs ELSE ${appendRun('j.earlier_runs', {
        attempt: 'j.attempts + 1',
        workerId: 'j.worker_id',
        startedAt: 'j.started_at',
        finishedAt: 'j.finished_at',
        outcome: 'j.status',
        error: "j.response ->> 'error'",
        retryAt: 'NULL::timestamptz',
      })} END,
      last_error = j.response ->> 'error',
      started_at = NULL, finished_at = NULL, worker_id = NULL, response = NULL, run_after = NULL,
      callback_status = NULL,
      operator_actions = coalesce(j.operator_actions, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
        'action', 'retry', 'by', $3::text,
        'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
    WHERE j.job_id = $1 AND j.status = 'error'
    RETURNING j.job_id, j.client_id, j.priority, pg_column_size(j.input) AS input_bytes
  ), queued AS (
    INSERT INTO ix_job_queue (job_id, client_id, priority, input_bytes)
    SELECT job_id, client_id, priority, input_bytes FROM retried
  ), undelivered AS (
    DELETE FROM ix_callback_queue q USING retried r WHERE q.job_id = r.job_id
  )
  SELECT job_id FROM retried`;

/**
 * Puts a job that ended `error` back to `pending`, with a fresh budget of `max_attempts` runs
 * (its own, else `serverMaxAttempts`), recording `operator` as who did it, and wakes workers.
 * Null when there is no such job; a JobNotFailedError when it had not failed.
 */
export async function jobRetry(
  db: Db,
  jobId: string,
  operator: string,
  serverMaxAttempts: number,
): Promise<Job | null> {
  const { rowCount } = await db.query(RETRY_SQL, [jobId, serverMaxAttempts, operator]);
  const found = await jobGetWithActions(db, jobId);
  if (!found) return null;
  if (rowCount === 0) throw new JobNotFailedError(found.job);
  await jobNotifyPending(db);
  return found.job;
}
