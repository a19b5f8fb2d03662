import type { Migration } from './types.js';

/**
 * Each callback attempt's outcome, kept on the job so it shows in the Job JSON: an append-only
 * array of `{attempt, at, status_code, error}`. Nullable without a default, so adding it rewrites
 * no row, and deliberately not indexed: ix_jobs carries no index on a column that changes, so
 * recording an attempt stays a HOT update (see 0001_jobs.ts). Added last, after `response`, so
 * WAL for an attempt carries only the row's tail.
 */
export const callbacks: Migration = {
  version: 2,
  name: 'callbacks',
  up: `ALTER TABLE ix_jobs ADD COLUMN callback_attempts jsonb;`,
  down: `ALTER TABLE ix_jobs DROP COLUMN callback_attempts;`,
};
