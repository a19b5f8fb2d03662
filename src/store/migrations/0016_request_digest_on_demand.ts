import type { Migration } from './types.js';

/**
 * A job is stored without its request's digest: `request_digest` stays NULL, and a replay (or the
 * prune, for the tombstone) makes the digest from the row's own `input` and `callback_url`, by the
 * same rule the submission's is made. Only replays and prunes pay for a hash, not every submit
 * (~3 µs of PostgreSQL's CPU), and a job row and its insert's WAL are ~36 bytes shorter
 * (`pg_stat_statements` over `bench:worker`'s submits). A NULL digest no longer means "stored
 * before migration 5, never conflicts": such a job is now compared like any other. Down writes
 * every missing digest (a pass over the whole table), which an older ix needs to tell a different
 * request from a replay.
 */
export const requestDigestOnDemand: Migration = {
  version: 16,
  name: 'request_digest_on_demand',
  up: `
    COMMENT ON COLUMN ix_jobs.request_digest IS
      'NULL for jobs stored from version 16: the digest is made from input and callback_url when needed.';`,
  down: `
    UPDATE ix_jobs SET request_digest = sha256(convert_to(jsonb_build_array(input, callback_url)::text, 'UTF8'))
    WHERE request_digest IS NULL;
    COMMENT ON COLUMN ix_jobs.request_digest IS NULL;`,
};
