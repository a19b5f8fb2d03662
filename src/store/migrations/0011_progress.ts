import type { Migration } from './types.js';

/**
 * Progress: `ix_jobs.progress` holds what the pipeline last reported of its run (`{percent,
 * stage, message, updated_at}`), written by the worker at most about once a second per job
 * (jobs/progress.ts), fenced like an outcome so a stale run cannot report over a newer one, and
 * cleared when the job goes back to the queue. Nullable without a default and not indexed: adding
 * it rewrites no row, and its updates, like claim and completion, are HOT (0003_hot_updates.ts).
 * Placed last in the row, so an update carries only the changed tail in WAL.
 */
export const progress: Migration = {
  version: 11,
  name: 'progress',
  up: 'ALTER TABLE ix_jobs ADD COLUMN progress jsonb;',
  down: 'ALTER TABLE ix_jobs DROP COLUMN progress;',
};
