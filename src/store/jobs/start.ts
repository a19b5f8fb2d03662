/**
 * Starting claimed jobs: a claim starts the first of its jobs at once, and a start marks the rest
 * `running` later, as the worker runs them (claim.ts).
 */
import type { Db } from '../db.js';
import type { Claimed } from './claim.js';
import { isoTimestamp, prepared } from './hydrate.js';

// A claim is held, unstarted, while its job is `pending` at the claim's attempt and epoch: every
// way back to the queue moves the epoch on. Running already, at the same attempt and epoch, by
// this worker: an earlier try of this very start that committed but whose answer was lost.
// `= ANY ($1)`: the job rows by their ids, whatever the plan (see complete.ts).
const START_SQL = `
  UPDATE ix_jobs j SET status = 'running', worker_id = $4,
    started_at = CASE WHEN j.status = 'pending' THEN now() ELSE j.started_at END
  FROM unnest($1::uuid[], $2::integer[], $3::integer[]) AS s(job_id, attempt, claim_epoch)
  WHERE j.job_id = ANY ($1::uuid[]) AND j.job_id = s.job_id AND j.attempts = s.attempt AND j.claim_epoch = s.claim_epoch
    AND (j.status = 'pending' OR (j.status = 'running' AND j.worker_id = $4))
  RETURNING j.job_id, j.started_at`;

/**
 * Marks claimed jobs `running`: from then on a worker that dies costs them an attempt, and the
 * API shows them started. Applies only to a claim still held: one handed back meanwhile (its
 * epoch moved on) is left alone. Returns each started job's `started_at` by job id.
 */
export async function jobStartMany(
  db: Db,
  workerId: string | null,
  claims: readonly Pick<Claimed, 'job' | 'claimEpoch'>[],
): Promise<Map<string, string>> {
  if (claims.length === 0) return new Map();
  const { rows } = await db.query<{ job_id: string; started_at: string }>(
    prepared('ix_job_start_many', START_SQL, [
      claims.map((c) => c.job.job_id),
      claims.map((c) => c.job.attempts),
      claims.map((c) => c.claimEpoch),
      workerId,
    ]),
  );
  return new Map(rows.map((row) => [row.job_id, isoTimestamp(row.started_at)]));
}
