import type { Migration } from './types.js';

/**
 * Cancellation: a job may end `cancelled`.
 * - `ix_jobs.cancel_requested_at`: when a client asked to cancel the job. A pending job is
 *   cancelled at once (the column is set with it); a running one is only marked, and its worker
 *   aborts the pipeline and records the `cancelled` outcome through the usual fenced completion
 *   (jobs/complete.ts), so whichever outcome commits first wins. Nullable without a default and
 *   not indexed: adding it rewrites no row, and claim and completion stay HOT updates
 *   (0003_hot_updates.ts).
 * - A cancelled job has `finished_at` and the response `{"error": "cancelled", "result": null}`,
 *   like any ended job, so a callback carries an outcome of the usual shape.
 * Down: cancelled jobs become `error` jobs (their response's error is the string "cancelled",
 * which the old outcome CHECK accepts for `error`).
 */
/** The outcome CHECK's cases of 0001_jobs.ts, which this migration keeps. */
const OUTCOMES_BEFORE = `WHEN 'pending' THEN started_at IS NULL AND finished_at IS NULL AND response IS NULL
        WHEN 'running' THEN started_at IS NOT NULL AND finished_at IS NULL AND response IS NULL
        WHEN 'done' THEN finished_at IS NOT NULL AND jsonb_typeof(response -> 'error') = 'null'
        WHEN 'error' THEN finished_at IS NOT NULL AND jsonb_typeof(response -> 'error') = 'string'`;

export const cancellation: Migration = {
  version: 8,
  name: 'cancellation',
  up: `
    ALTER TABLE ix_jobs ADD COLUMN cancel_requested_at timestamptz;
    ALTER TABLE ix_jobs DROP CONSTRAINT ix_jobs_status_check;
    ALTER TABLE ix_jobs ADD CONSTRAINT ix_jobs_status_check
      CHECK (status IN ('pending', 'running', 'done', 'error', 'cancelled'));
    ALTER TABLE ix_jobs DROP CONSTRAINT ix_jobs_outcome_check;
    ALTER TABLE ix_jobs ADD CONSTRAINT ix_jobs_outcome_check CHECK (coalesce(
      CASE status
        ${OUTCOMES_BEFORE}
        WHEN 'cancelled' THEN finished_at IS NOT NULL AND cancel_requested_at IS NOT NULL
          AND response ->> 'error' = 'cancelled' AND jsonb_typeof(response -> 'result') = 'null'
      END, false));`,
  down: `
    UPDATE ix_jobs SET status = 'error' WHERE status = 'cancelled';
    ALTER TABLE ix_jobs DROP CONSTRAINT ix_jobs_outcome_check;
    ALTER TABLE ix_jobs ADD CONSTRAINT ix_jobs_outcome_check CHECK (coalesce(
      CASE status
        ${OUTCOMES_BEFORE}
      END, false));
    ALTER TABLE ix_jobs DROP CONSTRAINT ix_jobs_status_check;
    ALTER TABLE ix_jobs ADD CONSTRAINT ix_jobs_status_check CHECK (status IN ('pending', 'running', 'done', 'error'));
    ALTER TABLE ix_jobs DROP COLUMN cancel_requested_at;`,
};
