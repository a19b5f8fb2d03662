import type { Migration } from './types.js';

/**
 * Retention: finished jobs are pruned, and each leaves a tombstone that keeps its idempotency key
 * taken for a period of its own, so a late retry of a pruned request is answered `410 gone`
 * instead of running it again.
 * - `ix_job_tombstones` holds what is left of a pruned job: its key, ids, final status, when it
 *   finished and was pruned, and its request digest (so a different request under the key is
 *   still a conflict). Keyed by `(client_id, request_id)`, which the submit's insert probes
 *   once per submission (jobs/insert.ts); `job_id` is unique for `GET /jobs/{id}`.
 *   `key_free_after` (null: never) is fixed when the job is pruned, so what a 410 promised stays
 *   true if the setting changes later; it is indexed for the tombstones' own expiry.
 * - No index is added to `ix_jobs`: the pruner finds expired jobs through the primary key, whose
 *   UUIDv7 job ids are ordered by creation time (jobs/prune.ts). An index on `finished_at` or
 *   `status` would make every completion a non-HOT update (0001_jobs.ts, 0003_hot_updates.ts).
 * - `vacuum_truncate = false` on both tables: after a prune the space of the rows removed is
 *   reused by the jobs and tombstones that follow, so giving the empty tail of a table back to
 *   the file system only makes it grow again, and doing so takes an ACCESS EXCLUSIVE lock that
 *   stops every submit, claim and completion while vacuum truncates (bench:retention's rounds
 *   of fill → prune → autovacuum: the heap truncated to nothing, then grew back whole).
 * Nothing on `ix_jobs` is rewritten. Down: the tombstones go, and with them the keys they held.
 */
export const retention: Migration = {
  version: 10,
  name: 'retention',
  up: `
    CREATE TABLE ix_job_tombstones (
      client_id text NOT NULL,
      request_id text NOT NULL,
      job_id uuid NOT NULL,
      ix_id text NOT NULL,
      status text NOT NULL,
      finished_at timestamptz NOT NULL,
      pruned_at timestamptz NOT NULL DEFAULT now(),
      key_free_after timestamptz,
      request_digest bytea,
      CONSTRAINT ix_job_tombstones_pkey PRIMARY KEY (client_id, request_id),
      CONSTRAINT ix_job_tombstones_job_id_key UNIQUE (job_id),
      CONSTRAINT ix_job_tombstones_status_check CHECK (status IN ('done', 'error', 'cancelled'))
    ) WITH (vacuum_truncate = false);
    ALTER TABLE ix_jobs SET (vacuum_truncate = false);
    CREATE INDEX ix_job_tombstones_expiry_idx ON ix_job_tombstones (key_free_after);`,
  down: `
    ALTER TABLE ix_jobs RESET (vacuum_truncate);
    DROP TABLE ix_job_tombstones;`,
};
