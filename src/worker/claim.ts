import type { Claimed, ClaimedJob } from '../store/index.js';
import type { JobAbort } from './run.js';

/**
 * One claim of a job, as the worker holds it from the claim until its outcome is recorded or it
 * is handed back. Each claim is its own object, and the worker tracks claims by identity: a job
 * whose lease was rescued from this very worker and claimed by it again is a second claim, so
 * nothing the first one does (its cleanup, its stale outcome) can touch the second.
 */
export interface Claim {
  readonly job: ClaimedJob;
  /** The job's claim_epoch at the claim: its start and outcome apply only while that holds. */
  readonly claimEpoch: number;
  /** The stored size of its input, counted against IX_WORKER_MAX_HELD_BYTES. */
  readonly inputBytes: number;
  /** How often it was rescued from a worker that died or stalled while running it. */
  readonly rescues: number;
  /** It holds one of its client's `max_running` slots: its end lets another job of the client run. */
  readonly limited: boolean;
  /** The lease of the claim statement that took it (see HeldClaims). */
  readonly leaseId: string;
  /** `running` in the database: from then on a dead worker costs the job an attempt. */
  marked: boolean;
  /** When its pipeline was called; null while it waits. */
  invokedAt: string | null;
  /** The running pipeline's abort switch. */
  abort: JobAbort | null;
  /** A client cancelled it while it ran: its outcome is `cancelled`, whatever the pipeline returns. */
  cancelled: boolean;
  /** How long it had waited in the queue when claimed, and when that was (epoch ms). */
  readonly waitedSeconds: number;
  readonly claimedAtMs: number;
  /** How long its pipeline ran, once it returned. */
  runSeconds: number;
}

/** A claim as the store made it, before anything has happened to it in this worker. */
export function newClaim({
  job,
  started,
  claimEpoch,
  inputBytes,
  rescues,
  waitedSeconds,
  limited,
  leaseId,
}: Claimed): Claim {
  return {
    job,
    claimEpoch,
    inputBytes,
    rescues,
    limited,
    leaseId,
    marked: started,
    invokedAt: null,
    abort: null,
    cancelled: false,
    waitedSeconds,
    claimedAtMs: Date.now(),
    runSeconds: 0,
  };
}

/**
 * A job that was in the hands of a worker that died or stopped (charged an attempt, or handed
 * back unstarted) may be what killed it. Such a job is marked `running` before its pipeline is
 * called, so that if it kills this worker too, it is charged for it and, at the budget,
 * abandoned. A fresh job starts at once and is marked meanwhile: waiting a round trip before
 * each start would cap a worker at `concurrency` jobs a round trip.
 */
export function startsCarefully(claim: Claim): boolean {
  return claim.job.attempts > 0 || claim.claimEpoch > 0;
}

/**
 * A job that was running on a worker that died or stalled runs alone: if it is what killed that
 * worker, it kills the next one with nobody beside it, so it alone is charged, and the jobs that
 * happened to share its first worker are not charged again and again until abandoned in its
 * stead. It waits until its worker has nothing else running, and nothing else starts meanwhile.
 */
export function startsAlone(claim: Claim): boolean {
  return claim.rescues > 0;
}
