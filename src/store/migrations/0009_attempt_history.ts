import type { Migration } from './types.js';

/**
 * The attempt history: every run of a job, with its worker, times, outcome and error.
 * - The run a job is on, or the run that ended it through its worker's outcome, is described by
 *   the row's own columns (attempt `attempts + 1`, `worker_id`, `started_at`, `finished_at`,
 *   `status`, `response ->> 'error'`) whenever `started_at` is set. Every other way a run ends
 *   moves it into `ix_jobs.earlier_runs` and clears `started_at`: a retryable failure
 *   (jobs/complete.ts), a rescue from a dead or stalled worker, and a graceful stop's hand-back
 *   (jobs/sweep.ts). So a job that succeeds at its first run writes no history of its own: the
 *   no-failure path's WAL and CPU stay as they were (bench/RESULTS.md, "Attempt history").
 * - `earlier_runs`: a JSON array, oldest first, of `{attempt, worker_id, started_at,
 *   finished_at, outcome, error, retry_at}` (outcome `retry`, `worker_lost` or `interrupted`);
 *   null while there is none. Appended to, never rewritten, by the statement that ends the run,
 *   fenced like the rest of that statement.
 * Nullable without a default and not indexed: adding it rewrites no row, and claim and
 * completion stay HOT updates (0003_hot_updates.ts). Down drops the earlier runs alone: every job
 * keeps its `attempts` and `last_error`.
 */
export const attemptHistory: Migration = {
  version: 9,
  name: 'attempt_history',
  up: 'ALTER TABLE ix_jobs ADD COLUMN earlier_runs jsonb;',
  down: 'ALTER TABLE ix_jobs DROP COLUMN earlier_runs;',
};
