import type { Migration } from './types.js';

/**
 * Retries with backoff and scheduled runs.
 * - `ix_job_queue.ready_at`: when a queued job may be claimed (now, unless it was scheduled or
 *   waits out a retry's backoff). The claim reads `WHERE ready_at <= now() ORDER BY ready_at,
 *   seq` through the index on (ready_at, seq): an index range scan of the ready rows alone, so a
 *   backlog scheduled for later costs a claim nothing (tests/integration/store.migrations.test.ts,
 *   "claim plan"). FIFO by when a job became ready. A default of now(), which is not volatile,
 *   rewrites no row.
 * - `ix_jobs.run_after`: the same time, kept on the job so the API can show when its next run is
 *   due without reading the queue; `max_attempts`: the budget the submitter asked for (null: the
 *   server's IX_MAX_ATTEMPTS); `last_error`: the error of the last run that is retried, so a
 *   waiting job shows why it waits. A pending job keeps `response` null (the outcome CHECK of
 *   0001_jobs.ts stands: only a terminal job has a response). All three are nullable without a
 *   default, so adding them rewrites no row, and none is indexed, so claim and completion stay
 *   HOT updates (0003_hot_updates.ts).
 */
export const retries: Migration = {
  version: 7,
  name: 'retries',
  up: `
    ALTER TABLE ix_job_queue ADD COLUMN ready_at timestamptz NOT NULL DEFAULT now();
    CREATE INDEX ix_job_queue_ready_idx ON ix_job_queue (ready_at, seq);
    ALTER TABLE ix_jobs ADD COLUMN run_after timestamptz;
    ALTER TABLE ix_jobs ADD COLUMN max_attempts integer CONSTRAINT ix_jobs_max_attempts_check CHECK (max_attempts >= 1);
    ALTER TABLE ix_jobs ADD COLUMN last_error text;`,
  down: `
    ALTER TABLE ix_jobs DROP COLUMN last_error;
    ALTER TABLE ix_jobs DROP COLUMN max_attempts;
    ALTER TABLE ix_jobs DROP COLUMN run_after;
    DROP INDEX ix_job_queue_ready_idx;
    ALTER TABLE ix_job_queue DROP COLUMN ready_at;`,
};
