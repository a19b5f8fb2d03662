import type { Migration } from './types.js';

/**
 * Claimed is not started. A worker claims more jobs than it runs at once (its prefetch buffer),
 * and a job it holds but has not started stays `pending` in ix_jobs, leased to it, until the
 * worker marks it `running` just before calling the pipeline. A worker that dies then charges an
 * attempt only to the jobs whose pipeline had started; its unstarted claims go back to the queue
 * as they were.
 * - `ix_jobs.claim_epoch` counts the times an unstarted claim of the job was handed back (the
 *   worker died or stopped). A worker's start of a claim applies only while the epoch is the one
 *   it claimed at, so a stale claim cannot start a job that was handed back and claimed again,
 *   by another worker or by the same one. It changes only on a hand-back, which is rare, so it
 *   costs the claim and the start no write of their own.
 * - `ix_job_queue.input_bytes` is the stored size of the job's input, so a claim can stop at a
 *   byte budget (IX_WORKER_MAX_HELD_BYTES) while reading only the queue.
 * Both are added with constant defaults, which rewrites no row.
 */
export const claims: Migration = {
  version: 4,
  name: 'claims',
  up: `
    ALTER TABLE ix_jobs ADD COLUMN claim_epoch integer NOT NULL DEFAULT 0;
    ALTER TABLE ix_job_queue ADD COLUMN input_bytes integer NOT NULL DEFAULT 0;`,
  down: `
    ALTER TABLE ix_job_queue DROP COLUMN input_bytes;
    ALTER TABLE ix_jobs DROP COLUMN claim_epoch;`,
};
