/**
 * What a lease holds (migrations/0014_batch_leases.ts): one row per claim, listing each job it
 * took with the attempt and claim epoch the job had then. An entry still holds its job while the
 * job is `pending` or `running` at that attempt and epoch: every way out of a claim moves one of
 * them on or ends the job, so entries are never updated, only outlived.
 */

/** The entries of lease `lease` (a row of ix_job_leases), as `e(job_id, attempt, claim_epoch)`. */
export const leaseEntries = (lease: string): string =>
  `unnest(${lease}.job_ids, ${lease}.attempts, ${lease}.claim_epochs) AS e(job_id, attempt, claim_epoch)`;

/**
 * The job row entry `e` still holds, as `job`, for a CROSS JOIN LATERAL: none when it holds none.
 * A primary-key probe per entry, in a LIMIT 1 subquery no plan can turn into a join that reads
 * ix_jobs whole (workers plan once per connection, maybe while the table is small: complete.ts).
 */
export const heldJob = (job: string): string =>
  `(SELECT * FROM ix_jobs ${job} WHERE ${job}.job_id = e.job_id AND ${job}.attempts = e.attempt
    AND ${job}.claim_epoch = e.claim_epoch AND ${job}.status IN ('pending', 'running') LIMIT 1) ${job}`;

/**
 * Every job a lease still holds, with its lease's worker: `(job_id, worker_id, status)`. A read
 * of every live lease, each entry a primary-key probe of ix_jobs: as many as jobs are claimed.
 */
export const HELD_JOBS = `(
  SELECT j.job_id, l.worker_id, j.status FROM ix_job_leases l
  CROSS JOIN LATERAL ${leaseEntries('l')}
  CROSS JOIN LATERAL ${heldJob('j')})`;
