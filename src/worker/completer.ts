/**
 * Records the outcomes of a worker's jobs in batches, apart from claiming and running them, so a
 * batch that fails can never take its neighbours or the worker down with it:
 * - a batch PostgreSQL refuses for one outcome in it (a NUL in a result, a lone surrogate) is
 *   recorded again one outcome at a time, and the one that still fails ends its job `error`
 *   with a storable message that says why;
 * - a batch that fails because the database is unreachable or overloaded is retried with
 *   backoff, until the worker stops and its deadline passes.
 */
import type { Logger } from 'pino';
import type { JobStatus } from '../contracts/index.js';
import type { Metrics } from '../metrics/index.js';
import {
  type Db,
  isTransientDatabaseError,
  jobCompleteMany,
  type Outcome,
  outcomeKey,
} from '../store/index.js';
import { Backoff, type Pace, settlesWithin, sleep } from '../time.js';
import type { Claim } from './claim.js';
import { type StorableResponse, unstorable } from './outcome.js';

export interface Finished {
  claim: Claim;
  outcome: StorableResponse;
  /**
   * Seconds until the job runs again, when its run failed retryably (recording it ends the job
   * instead if that was its last attempt); null: it ends.
   */
  retryInSeconds: number | null;
  /** A client cancelled the job while it ran: the outcome is `cancelled`, decided when it was queued. */
  cancelled?: boolean;
  /** Set once the outcome was replaced by an `unstorable` one: it is not replaced twice. */
  replaced?: boolean;
  /** Not even that could be recorded: the job is still held, for the sweeper to rescue. */
  unrecorded?: boolean;
}

export interface CompleterOptions {
  pool: Db;
  /** The worker whose runs these are, recorded with each run whose start was never marked. */
  workerId: string;
  /** IX_MAX_ATTEMPTS: the budget of runs of a job without its own. */
  maxAttempts: number;
  logger: Logger;
  /** Where each recorded run and ended job is counted. */
  metrics?: Metrics | null;
  /** Spaces the statements: outcomes that end meanwhile join the next. Absent: none waits. */
  pace?: Pace;
  /**
   * After each statement: the outcomes that applied, and those that no longer could (their job
   * was rescued and belongs to a newer attempt, or could not be recorded at all).
   */
  onSettled(applied: readonly Finished[], dropped: readonly Finished[]): void;
}

/**
 * How long ended leases wait for outcomes to go with before they are deleted in a statement of
 * their own. An ended lease is harmless meanwhile: every job it lists has left it, so neither the
 * sweep nor the heartbeat finds anything in it. Deleted at once, a lease often cost a statement of
 * its own after its last outcomes: at 300 submits/s, 11–40 % of a worker's completion statements
 * (bench/RESULTS.md, "Beside graphile-worker and the bound, from the built worker").
 */
export const LONE_LEASES_DELAY_MS = 1_000;

export class Completer {
  private queue: Finished[] = [];
  /** Leases that hold nothing any more, deleted with the next statement (see HeldClaims). */
  private endedLeases: string[] = [];
  /** Ended leases are written even without outcomes: their wait is over, or the worker drains. */
  private leasesDue = false;
  private leasesTimer: NodeJS.Timeout | null = null;
  /** Outcomes in the statement being written. */
  private writing = 0;
  private flushing: Promise<void> | null = null;
  private readonly backoff = new Backoff();
  private givenUp = false;

  constructor(private readonly options: CompleterOptions) {}

  /** Outcomes not recorded yet. */
  get size(): number {
    return this.queue.length + this.writing;
  }

  /** Whether anything is left to write: outcomes, or ended leases. */
  get idle(): boolean {
    return this.size === 0 && this.endedLeases.length === 0;
  }

  add(finished: Finished): void {
    this.queue.push(finished);
    void this.flush();
  }

  endLease(leaseId: string): void {
    this.endedLeases.push(leaseId);
    this.leasesTimer ??= setTimeout(() => {
      this.leasesTimer = null;
      this.leasesDue = true;
      void this.flush();
    }, LONE_LEASES_DELAY_MS).unref();
  }

  /**
   * Writes until nothing is left or `deadline` (epoch ms) passes; says whether everything was
   * recorded. Past the deadline nothing more is tried: those jobs are left to the sweeper.
   */
  async drain(deadline: number): Promise<boolean> {
    while (!this.idle) {
      // Set again each time: a failed write of leases alone cleared it.
      this.leasesDue = true;
      if (!(await settlesWithin(this.flush(), deadline - Date.now()))) {
        this.givenUp = true;
        const left = this.queue.splice(0);
        this.options.logger.error(
          { unrecorded: left.length + this.writing },
          'stopping with outcomes not recorded; their jobs will be rescued',
        );
        return false;
      }
    }
    return true;
  }

  private flush(): Promise<void> {
    // Starts on the next turn of the event loop, so every job that finished in this one shares
    // the statement (fast pipelines finish hundreds per turn).
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flushLoop())
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  private async flushLoop(): Promise<void> {
    while ((this.queue.length > 0 || (this.leasesDue && this.endedLeases.length > 0)) && !this.givenUp) {
      const pacedForMs = this.options.pace?.waitMs() ?? 0;
      if (pacedForMs > 0) {
        await sleep(pacedForMs);
        continue;
      }
      this.options.pace?.paced();
      const batch = this.queue.splice(0);
      this.writing = batch.length;
      try {
        await this.record(batch);
      } finally {
        this.writing = 0;
      }
    }
  }

  /** Records `batch`; false when it was put back to be tried again after a backoff. */
  private async record(batch: Finished[]): Promise<boolean> {
    let applied: Map<string, JobStatus>;
    const endedLeases = this.endedLeases.splice(0);
    this.leasesDue = false;
    if (this.leasesTimer !== null) clearTimeout(this.leasesTimer);
    this.leasesTimer = null;
    try {
      const { workerId, maxAttempts } = this.options;
      applied = await jobCompleteMany(this.options.pool, batch.map(toOutcome), {
        workerId,
        maxAttempts,
        endedLeases,
      });
    } catch (error) {
      if (batch.length === 0 && !isTransientDatabaseError(error)) {
        // Left to the sweeper, which deletes a worker's leases once it has stopped.
        this.options.logger.error({ err: error, leases: endedLeases }, 'could not delete ended leases');
        return true;
      }
      for (const leaseId of endedLeases) this.endLease(leaseId);
      return this.recover(batch, error);
    }
    this.backoff.reset();
    if (batch.length === 0) return true;
    const done: Finished[] = [];
    const stale: Finished[] = [];
    for (const finished of batch) {
      const { job } = finished.claim;
      const status = applied.get(outcomeKey(job.job_id, job.attempts));
      if (status === undefined) stale.push(finished);
      else {
        done.push(finished);
        this.logFailure(finished, status);
        this.count(finished, status);
      }
    }
    for (const { claim } of stale) {
      this.options.logger.warn(
        { ix_id: claim.job.ix_id, job_id: claim.job.job_id, attempt: claim.job.attempts },
        'outcome discarded: the job was rescued and belongs to a newer attempt',
      );
    }
    this.options.onSettled(done, stale);
    return true;
  }

  /** A recorded run, and the job it ended: only the statement knows whether a failure is retried. */
  private count({ claim }: Finished, status: JobStatus): void {
    const { metrics } = this.options;
    if (!metrics) return;
    if (status === 'pending') {
      metrics.pipelineRun('retry', claim.runSeconds);
      return;
    }
    if (status === 'running') return;
    metrics.pipelineRun(status, claim.runSeconds);
    metrics.jobFinished(claim.job.client_id, claim.job.created_at, status);
  }

  /** A failed run's line, once its outcome is recorded: only then is it known whether it retries. */
  private logFailure({ claim, outcome, retryInSeconds, cancelled }: Finished, status: JobStatus): void {
    const { error } = outcome.response;
    if (error === null || cancelled) return;
    const { ix_id, job_id, attempts } = claim.job;
    const fields = { ix_id, job_id, attempt: attempts, error };
    if (status === 'pending') this.options.logger.info({ ...fields, retryInSeconds }, 'job failed; retrying');
    else this.options.logger.info(fields, 'job ended in error');
  }

  private async recover(batch: Finished[], error: unknown): Promise<boolean> {
    if (isTransientDatabaseError(error)) {
      // Outcomes are fenced on their attempt, so writing them again later is safe.
      this.queue.unshift(...batch);
      const retryInMs = this.backoff.next();
      this.options.logger.error({ err: error, retryInMs }, 'recording outcomes failed; retrying');
      await sleep(retryInMs);
      return false;
    }
    if (batch.length > 1) {
      // One outcome spoils the statement for all: find it by recording each alone.
      for (const [i, finished] of batch.entries()) {
        if (this.givenUp) {
          this.queue.push(...batch.slice(i));
          return false;
        }
        // Put back already, after a backoff: the rest wait with it.
        if (!(await this.record([finished]))) {
          this.queue.push(...batch.slice(i + 1));
          return false;
        }
      }
      return true;
    }
    const finished = batch[0]!;
    const { job } = finished.claim;
    const context = { ix_id: job.ix_id, job_id: job.job_id, attempt: job.attempts, err: error };
    if (finished.replaced) {
      // Not even the plain error could be written: a fault of the database, not of the outcome.
      this.options.logger.error(context, 'outcome could not be recorded; the job will be rescued');
      this.options.onSettled([], [{ ...finished, unrecorded: true }]);
      return true;
    }
    this.options.logger.warn(context, 'outcome could not be stored; recording it as an error');
    return this.record([
      {
        ...finished,
        outcome: unstorable(finished.outcome.response, (error as Error).message),
        retryInSeconds: null,
        cancelled: false,
        replaced: true,
      },
    ]);
  }
}

function toOutcome({ claim, outcome, retryInSeconds, cancelled }: Finished): Outcome {
  const ended = cancelled ? 'cancelled' : outcome.response.error === null ? 'done' : 'error';
  const retries = ended === 'error' && retryInSeconds !== null;
  return {
    jobId: claim.job.job_id,
    attempt: claim.job.attempts,
    claimEpoch: claim.claimEpoch,
    startedAt: claim.marked ? null : claim.invokedAt,
    response: outcome.response,
    status: retries ? 'retry' : ended,
    retryInSeconds: retries ? retryInSeconds : undefined,
    responseJson: outcome.json,
    limited: claim.limited,
    leaseId: claim.leaseId,
  };
}
