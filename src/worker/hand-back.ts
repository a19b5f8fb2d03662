import type { Logger } from 'pino';
import { type Db, type Held, jobReleaseMany } from '../store/index.js';
import { settlesWithin } from '../time.js';
import type { Claim } from './claim.js';

/**
 * Gives a stopping worker's claims back to the queue: unstarted ones as they were, started ones
 * (their pipeline being aborted) likewise, with no attempt charged. If the database cannot be reached
 * within `ms`, the sweeper rescues them once the worker's heartbeat is gone. Says whether the
 * hand-back committed: only then do the claims no longer hold their jobs.
 */
export async function handBack(
  pool: Db,
  logger: Logger,
  claims: readonly Claim[],
  ms: number,
): Promise<boolean> {
  if (claims.length === 0) return true;
  const held: Held[] = claims.map((c) => ({
    jobId: c.job.job_id,
    attempt: c.job.attempts,
    claimEpoch: c.claimEpoch,
    started: c.marked,
  }));
  const release = jobReleaseMany(pool, held);
  try {
    if (await settlesWithin(release, ms)) {
      logger.info({ job_ids: await release }, 'handed jobs back to the queue');
      return true;
    }
    logger.error({ jobs: claims.length }, 'could not hand jobs back in time; the sweeper will rescue them');
  } catch (error) {
    logger.error({ err: error }, 'could not hand jobs back; the sweeper will rescue them');
  }
  return false;
}
