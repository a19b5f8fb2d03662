import type { Migration } from './types.js';

/**
 * `ix_jobs.rescues` counts the times the job was running on a worker that died or stalled and was
 * rescued from it (a graceful stop's hand-back does not count). Such a job may be what killed its
 * worker: workers run it alone (see startsAlone in src/worker/claim.ts), so that if it kills the
 * next worker too, it is charged alone, and the jobs that happened to run beside it the first time
 * are not charged with it again and again until they are abandoned in its stead. Added with a
 * constant default, which rewrites no row.
 */
export const rescues: Migration = {
  version: 6,
  name: 'rescues',
  up: 'ALTER TABLE ix_jobs ADD COLUMN rescues integer NOT NULL DEFAULT 0;',
  down: 'ALTER TABLE ix_jobs DROP COLUMN rescues;',
};
