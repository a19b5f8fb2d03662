import type { Migration } from './types.js';

/**
 * Clients as data, and a claim that is fair between them.
 * - `ix_clients`: each client's weight in the fair claim, its limits (null: the server-wide
 *   `IX_CLIENT_MAX_RUNNING`, `IX_CLIENT_MAX_PENDING`, `IX_CLIENT_RATE`) and whether it is
 *   disabled. `ix_client_keys`: its API keys, as SHA-256 digests only, several per client so a key
 *   can be rotated.
 * - `ix_jobs.priority` (0–9, higher first): orders a client's own jobs, never one client's against
 *   another's. A constant default rewrites no row; it is not indexed on ix_jobs, so claim and
 *   completion stay HOT updates (0003_hot_updates.ts).
 * - `ix_job_queue.client_id`, `priority`: the claim reads the queue through
 *   (client_id, priority DESC, ready_at, seq): a skip over the clients that have queued jobs, then,
 *   for each, a range scan of its ready jobs alone, most urgent first, so a flooding client's
 *   backlog is never read to find another client's job. It replaces the index on (ready_at, seq)
 *   (0007_retries.ts): with both, the planner took that one for a client's jobs whenever its
 *   statistics showed one client, and a second client's job then sat behind the first one's whole
 *   backlog. The primary key on `seq` goes too: the claim deletes the rows it locked by their
 *   `ctid`, which cannot move while it holds them, and nothing else looks a queue row up by `seq`.
 *   Each index is an entry written and deleted, and their WAL, for every job: the fair index
 *   carries the client id, and without these two the queue's writes cost less than before.
 * - `ix_job_leases.client_id`, `slot`: a claimed job of a client with `max_running` holds one of
 *   the slots 1..max_running, unique per client; a claim that would take a slot another claim took
 *   meanwhile inserts nothing (ON CONFLICT DO NOTHING) and leaves the job queued. The index is
 *   partial, so a job of a client without the limit writes no entry in it.
 * - `ix_client_turns`: how much each client has been served while others waited too, in units of
 *   jobs ÷ weight (its pass), and when it was last served; the claim serves the clients whose pass
 *   is lowest (stride scheduling), the one served longest ago first among equals.
 */
export const clients: Migration = {
  version: 13,
  name: 'clients',
  up: `
    CREATE TABLE ix_clients (
      client_id text PRIMARY KEY,
      weight integer NOT NULL DEFAULT 1,
      max_running integer,
      max_pending integer,
      rate_per_second double precision,
      disabled boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ix_clients_client_id_check CHECK (length(client_id) BETWEEN 1 AND 128),
      CONSTRAINT ix_clients_weight_check CHECK (weight BETWEEN 1 AND 1000),
      CONSTRAINT ix_clients_max_running_check CHECK (max_running >= 1),
      CONSTRAINT ix_clients_max_pending_check CHECK (max_pending >= 1),
      CONSTRAINT ix_clients_rate_check CHECK (rate_per_second > 0)
    );
    CREATE TABLE ix_client_keys (
      key_digest bytea PRIMARY KEY,
      client_id text NOT NULL REFERENCES ix_clients ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ix_client_keys_digest_check CHECK (length(key_digest) = 32)
    );
    CREATE INDEX ix_client_keys_client_idx ON ix_client_keys (client_id);
    CREATE TABLE ix_client_turns (
      client_id text PRIMARY KEY,
      pass double precision NOT NULL,
      served_at timestamptz
    ) WITH (fillfactor = 50);

    ALTER TABLE ix_jobs ADD COLUMN priority smallint NOT NULL DEFAULT 0
      CONSTRAINT ix_jobs_priority_check CHECK (priority BETWEEN 0 AND 9);

    ALTER TABLE ix_job_queue ADD COLUMN client_id text, ADD COLUMN priority smallint NOT NULL DEFAULT 0;
    UPDATE ix_job_queue q SET client_id = j.client_id FROM ix_jobs j WHERE j.job_id = q.job_id;
    ALTER TABLE ix_job_queue ALTER COLUMN client_id SET NOT NULL;
    CREATE INDEX ix_job_queue_fair_idx ON ix_job_queue (client_id, priority DESC, ready_at, seq);
    DROP INDEX ix_job_queue_ready_idx;
    ALTER TABLE ix_job_queue DROP CONSTRAINT ix_job_queue_pkey;

    ALTER TABLE ix_job_leases ADD COLUMN client_id text, ADD COLUMN slot integer;
    UPDATE ix_job_leases l SET client_id = j.client_id FROM ix_jobs j WHERE j.job_id = l.job_id;
    CREATE UNIQUE INDEX ix_job_leases_slot_key ON ix_job_leases (client_id, slot) WHERE slot IS NOT NULL;`,
  down: `
    DROP INDEX ix_job_leases_slot_key;
    ALTER TABLE ix_job_leases DROP COLUMN slot, DROP COLUMN client_id;
    ALTER TABLE ix_job_queue ADD CONSTRAINT ix_job_queue_pkey PRIMARY KEY (seq);
    CREATE INDEX ix_job_queue_ready_idx ON ix_job_queue (ready_at, seq);
    DROP INDEX ix_job_queue_fair_idx;
    ALTER TABLE ix_job_queue DROP COLUMN priority, DROP COLUMN client_id;
    ALTER TABLE ix_jobs DROP COLUMN priority;
    DROP TABLE ix_client_turns;
    DROP TABLE ix_client_keys;
    DROP TABLE ix_clients;`,
};
