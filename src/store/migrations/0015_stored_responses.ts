import type { Migration } from './types.js';

/**
 * A job's response is stored without its `ix_id`: `{error, result}`, with the `ix_id` read from
 * the row's own column. Every response carried the 16 characters twice, and each outcome wrote
 * them to the WAL again: ~29 of the ~220 bytes a completion logs a job. Rows written before keep
 * their `ix_id` (reads accept both). Down puts it back into every response that lacks it, so an
 * older ix reads them all.
 */
export const storedResponses: Migration = {
  version: 15,
  name: 'stored_responses',
  up: `
    COMMENT ON COLUMN ix_jobs.response IS
      'The job''s response without its ix_id (the row''s own): {error, result}. Rows written before version 15 also hold the ix_id.';`,
  down: `
    UPDATE ix_jobs SET response = jsonb_build_object('ix_id', ix_id) || response
    WHERE response IS NOT NULL AND NOT response ? 'ix_id';
    COMMENT ON COLUMN ix_jobs.response IS NULL;`,
};
