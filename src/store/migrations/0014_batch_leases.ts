import type { Migration } from './types.js';

/**
 * One lease per claim instead of one per claimed job.
 * - `ix_job_leases`: one row per claim statement, naming its worker and, in three parallel arrays,
 *   each job it took with the `attempts` and `claim_epoch` the job had when taken. An entry holds
 *   its job while the job is still `pending` or `running` at that attempt and epoch; every way a
 *   job leaves a claim (an outcome, a retry, a hand-back, a rescue, a cancellation, an operator's
 *   retry) moves the attempt or the epoch on or ends the job, so a spent entry needs no write. The
 *   worker deletes its lease once every job in it has left; the sweep deletes the leases of a worker
 *   that went silent, after rescuing what they still held. A per-job row cost an insert and a
 *   delete, each with a primary-key entry, for every job: 215 of a claim's 271 bytes of WAL per job
 *   and 5 of its 17 ms for 1,000 jobs (EXPLAIN (ANALYZE, WAL) of the claim).
 * - `ix_job_slots`: the `max_running` slot each claimed job of a limited client holds, unique per
 *   client, as the per-job lease rows held it before; only such jobs have a row.
 */
export const batchLeases: Migration = {
  version: 14,
  name: 'batch_leases',
  up: `
    CREATE TABLE ix_job_slots (
      job_id uuid PRIMARY KEY,
      client_id text NOT NULL,
      slot integer NOT NULL,
      CONSTRAINT ix_job_slots_slot_key UNIQUE (client_id, slot)
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
    INSERT INTO ix_job_slots (job_id, client_id, slot)
    SELECT job_id, client_id, slot FROM ix_job_leases WHERE slot IS NOT NULL;

    ALTER TABLE ix_job_leases RENAME TO ix_job_leases_per_job;
    CREATE TABLE ix_job_leases (
      lease_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      worker_id uuid,
      claimed_at timestamptz NOT NULL DEFAULT now(),
      job_ids uuid[] NOT NULL,
      attempts integer[] NOT NULL,
      claim_epochs integer[] NOT NULL
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
    INSERT INTO ix_job_leases (worker_id, job_ids, attempts, claim_epochs)
    SELECT l.worker_id, array_agg(j.job_id), array_agg(j.attempts), array_agg(j.claim_epoch)
    FROM ix_job_leases_per_job l JOIN ix_jobs j ON j.job_id = l.job_id
    GROUP BY l.worker_id;
    DROP TABLE ix_job_leases_per_job;`,
  down: `
    CREATE TABLE ix_job_leases_per_job (
      job_id uuid PRIMARY KEY,
      worker_id uuid,
      client_id text,
      slot integer
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
    INSERT INTO ix_job_leases_per_job (job_id, worker_id, client_id)
    SELECT DISTINCT ON (e.job_id) e.job_id, l.worker_id, j.client_id
    FROM ix_job_leases l
    CROSS JOIN LATERAL unnest(l.job_ids, l.attempts, l.claim_epochs) AS e(job_id, attempt, claim_epoch)
    JOIN ix_jobs j ON j.job_id = e.job_id AND j.attempts = e.attempt AND j.claim_epoch = e.claim_epoch
    WHERE j.status IN ('pending', 'running');
    UPDATE ix_job_leases_per_job l SET slot = s.slot FROM ix_job_slots s WHERE s.job_id = l.job_id;
    DROP TABLE ix_job_leases;
    ALTER TABLE ix_job_leases_per_job RENAME TO ix_job_leases;
    ALTER INDEX ix_job_leases_per_job_pkey RENAME TO ix_job_leases_pkey;
    CREATE UNIQUE INDEX ix_job_leases_slot_key ON ix_job_leases (client_id, slot) WHERE slot IS NOT NULL;
    DROP TABLE ix_job_slots;`,
};
