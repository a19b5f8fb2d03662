import type { Migration } from './types.js';

/**
 * What each job was submitted with, as a SHA-256 digest of its `input` and `callback_url` (the
 * expression is `requestDigest` in ../jobs/insert.ts), so a replay of its `(client_id,
 * request_id)` with a different request can be told from a retry and refused instead of
 * silently answered with the first job. 32 bytes, written once at insert and never changed: like `callback_attempts`
 * it is nullable without a default, so adding it rewrites no row, and not indexed, so claim and
 * completion stay HOT updates. Jobs submitted before it have NULL, which never conflicts.
 */
export const requestDigest: Migration = {
  version: 5,
  name: 'request_digest',
  up: `ALTER TABLE ix_jobs ADD COLUMN request_digest bytea;`,
  down: `ALTER TABLE ix_jobs DROP COLUMN request_digest;`,
};
