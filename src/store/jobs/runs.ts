/**
 * A job's runs, for the statements that end them (a completion: complete.ts; a hand-back:
 * sweep.ts): the budget that bounds them, and the one form in which `ix_jobs.earlier_runs`
 * stores a run that ended without ending its job (migrations/0009_attempt_history.ts), which
 * hydrate.ts reads back through RunSchema.
 */

/**
 * SQL: whether the run the job `job` (a table alias) is on is its last. A job runs at most its
 * `max_attempts` (else the server's, `serverMaxAttempts`: IX_MAX_ATTEMPTS) times, and `attempts`
 * counts the runs charged before this one; a failure of the last run ends the job. Null, read as
 * false, when neither budget is set: retried forever.
 */
export const isLastAttempt = (job: string, serverMaxAttempts: string): string =>
  `(${job}.attempts + 1 >= coalesce(${job}.max_attempts, ${serverMaxAttempts}))`;

/** SQL for a timestamptz as the API prints timestamps: UTC, milliseconds (Date.toISOString()). */
export const isoText = (timestamp: string): string =>
  `to_char((${timestamp}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** SQL expressions (column references, never values) for the parts of one ended run. */
export interface EndedRunSql {
  attempt: string;
  workerId: string;
  startedAt: string;
  outcome: string;
  error: string;
  /** When the job's next run is due, for a retry; else `NULL`. */
  retryAt: string;
  /** When the run ended; default now(). */
  finishedAt?: string;
}

/** SQL: the jsonb array `runs` (null when empty) with `run`, ended at `finishedAt` (now()), appended. */
export function appendRun(runs: string, run: EndedRunSql): string {
  return `coalesce(${runs}, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
    'attempt', ${run.attempt}, 'worker_id', ${run.workerId}, 'started_at', ${isoText(run.startedAt)},
    'finished_at', ${isoText(run.finishedAt ?? 'now()')}, 'outcome', ${run.outcome}::text, 'error', ${run.error}::text,
    'retry_at', ${isoText(run.retryAt)}))`;
}
