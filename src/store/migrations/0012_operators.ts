import type { Migration } from './types.js';

/**
 * `ix_jobs.operator_actions`: who retried a job and when, an append-only JSON array of
 * `{action, by, at}`; null while there is none. Nullable without a default and not indexed:
 * adding it rewrites no row, and claim and completion stay HOT updates (0003_hot_updates.ts).
 *
 * Job search adds no index. Every index on ix_jobs costs each submitted job an entry and its WAL:
 * an index on (client_id, job_id) and one on request_id took the worker benchmark from ~1,596 to
 * ~1,758 WAL bytes per job (bench/RESULTS.md, "Operators"). The indexes ix_jobs has serve every
 * filter (store/admin.ts): the primary key is a UUIDv7, in submission order, for time and order;
 * the unique (client_id, request_id) for a client and a request id; the unique ix_id for an
 * ix_id prefix.
 */
export const operators: Migration = {
  version: 12,
  name: 'operators',
  up: 'ALTER TABLE ix_jobs ADD COLUMN operator_actions jsonb;',
  down: 'ALTER TABLE ix_jobs DROP COLUMN operator_actions;',
};
