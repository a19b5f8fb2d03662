import type { Migration } from './types.js';

/**
 * The job store. Three tables instead of one with partial indexes, measured on PostgreSQL 15
 * (20,000 jobs, insert + claim 500 + complete 500, `pg_current_wal_lsn()` difference ÷ jobs):
 *   one table, partial indexes on status ..................... 2,750 B/job
 *   ix_jobs + queue + leases, fillfactor 100 ................. 3,120 B/job
 *   same, fillfactor 50, mutable columns last ................ 1,760 B/job
 * A status change that moves a row between partial indexes is never a HOT update, so every
 * transition rewrote the whole row and an entry in every index. Here `ix_jobs` carries no index
 * on a column that changes, so claim and completion are HOT updates on the same page (hence
 * fillfactor 50), and WAL carries only the changed tail of the row (hence immutable columns
 * first, `response` last). The pending set (`ix_job_queue`) and the running set
 * (`ix_job_leases`) are small tables holding only live jobs, so claiming and sweeping cost the
 * same with a million finished rows as with none. Invariant: a job has a queue row iff it is
 * pending and a lease row iff it is running (since 0004_claims.ts: iff it is claimed, started
 * or not); only the statements in ../jobs/ move them together.
 */
export const jobs: Migration = {
  version: 1,
  name: 'jobs',
  up: `
    CREATE TABLE ix_jobs (
      job_id uuid PRIMARY KEY,
      ix_id text NOT NULL,
      client_id text NOT NULL,
      request_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      callback_url text,
      input jsonb NOT NULL,
      status text NOT NULL DEFAULT 'pending',
      attempts integer NOT NULL DEFAULT 0,
      worker_id uuid,
      started_at timestamptz,
      finished_at timestamptz,
      callback_status text,
      response jsonb,
      CONSTRAINT ix_jobs_ix_id_key UNIQUE (ix_id),
      CONSTRAINT ix_jobs_correlation_key UNIQUE (client_id, request_id),
      CONSTRAINT ix_jobs_ix_id_check CHECK (ix_id ~ '^[0-9a-f]{16}$'),
      CONSTRAINT ix_jobs_client_id_check CHECK (length(client_id) BETWEEN 1 AND 128),
      CONSTRAINT ix_jobs_request_id_check CHECK (length(request_id) BETWEEN 1 AND 256),
      CONSTRAINT ix_jobs_status_check CHECK (status IN ('pending', 'running', 'done', 'error')),
      CONSTRAINT ix_jobs_callback_status_check CHECK (callback_status IN ('delivered', 'failed')),
      CONSTRAINT ix_jobs_attempts_check CHECK (attempts >= 0),
      -- done iff response.error is null; only terminal rows have a response and finished_at.
      CONSTRAINT ix_jobs_outcome_check CHECK (coalesce(
        CASE status
          WHEN 'pending' THEN started_at IS NULL AND finished_at IS NULL AND response IS NULL
          WHEN 'running' THEN started_at IS NOT NULL AND finished_at IS NULL AND response IS NULL
          WHEN 'done' THEN finished_at IS NOT NULL AND jsonb_typeof(response -> 'error') = 'null'
          WHEN 'error' THEN finished_at IS NOT NULL AND jsonb_typeof(response -> 'error') = 'string'
        END, false))
    ) WITH (fillfactor = 50);

    -- Pending jobs, in the order they became pending. Rows live for seconds, so vacuum early.
    CREATE TABLE ix_job_queue (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      job_id uuid NOT NULL
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

    -- Running jobs and the worker that holds each (null: rescued by age only).
    CREATE TABLE ix_job_leases (
      job_id uuid PRIMARY KEY,
      worker_id uuid
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

    -- Live worker processes; a stale heartbeat means the worker's leases are up for rescue.
    CREATE TABLE ix_workers (
      worker_id uuid PRIMARY KEY,
      hostname text NOT NULL,
      pid integer NOT NULL,
      started_at timestamptz NOT NULL DEFAULT now(),
      heartbeat_at timestamptz NOT NULL DEFAULT now()
    );

    -- Terminal jobs whose callback is still to be delivered, due at next_attempt_at.
    CREATE TABLE ix_callback_queue (
      job_id uuid PRIMARY KEY,
      attempt integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now()
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
    CREATE INDEX ix_callback_queue_due_idx ON ix_callback_queue (next_attempt_at);
  `,
  down: `
    DROP TABLE ix_callback_queue;
    DROP TABLE ix_workers;
    DROP TABLE ix_job_leases;
    DROP TABLE ix_job_queue;
    DROP TABLE ix_jobs;
  `,
};
