import type { Migration } from './types.js';

/**
 * What operators need: job search and a record of what they did.
 * - `ix_jobs_client_idx` on (client_id, job_id) and `ix_jobs_request_id_idx` on
 *   (request_id COLLATE "C"): a search by client, newest first, reads one client's range of the
 *   first; a search by `request_id` prefix is a range of the second (the "C" collation makes a
 *   LIKE prefix a range, under any database collation). Both columns are written once, at insert,
 *   so claim and completion stay HOT updates (0003_hot_updates.ts): each costs an index entry per
 *   submitted job, never one per status change (bench/RESULTS.md, "Operators"). No index is
 *   needed for time: `job_id` is a UUIDv7 (../ids.ts), so the primary key is already in
 *   submission order, and an `ix_id` prefix is a range of the unique index on `ix_id`.
 * - `ix_jobs.operator_actions`: who retried a job and when, an append-only JSON array of
 *   `{action, by, at}`; null while there is none. Nullable without a default and not indexed:
 *   adding it rewrites no row.
 */
export const operators: Migration = {
  version: 11,
  name: 'operators',
  up: `
    ALTER TABLE ix_jobs ADD COLUMN operator_actions jsonb;
    CREATE INDEX ix_jobs_client_idx ON ix_jobs (client_id, job_id);
    CREATE INDEX ix_jobs_request_id_idx ON ix_jobs (request_id COLLATE "C");`,
  down: `
    DROP INDEX ix_jobs_request_id_idx;
    DROP INDEX ix_jobs_client_idx;
    ALTER TABLE ix_jobs DROP COLUMN operator_actions;`,
};
