/**
 * Starts a worker's buffered claims: writes each one's `running` mark, one statement at a time
 * for whatever is waiting, either before its pipeline is called (a careful start, see
 * startsCarefully) or while it already runs (a fresh job).
 */
import type { Logger } from 'pino';
import { type Db, jobStartMany } from '../store/index.js';
import { Backoff, sleep } from '../time.js';
import type { Claim } from './claim.js';

export interface StarterOptions {
  pool: Db;
  workerId: string;
  logger: Logger;
  /** Calls the pipeline of a claim whose careful start was written. */
  run(claim: Claim): void;
  /** Lets go of a claim that was handed back before it could start. */
  drop(claim: Claim): void;
  /** Whether a claim's pipeline is still running: one that has finished needs no mark. */
  isRunning(claim: Claim): boolean;
  /** After each statement: the jobs it marked started. */
  onStarted(jobIds: readonly string[]): void;
}

/** Runs `work` on the next turn of the event loop, so whatever is queued in this one shares it. */
const nextTurn = (work: () => Promise<void>): Promise<void> =>
  new Promise<void>((resolve) => setImmediate(resolve)).then(work);

export class Starter {
  /** Careful starts waiting for the next statement, and those in the statement being written. */
  private waiting: Claim[] = [];
  private writing: Claim[] = [];
  private unmarked: Claim[] = [];
  private careful: Promise<void> | null = null;
  private marking: Promise<void> | null = null;
  private stopping = false;

  constructor(private readonly options: StarterOptions) {}

  /** Careful starts not running yet: they hold a slot of the worker's concurrency. */
  get starting(): number {
    return this.waiting.length + this.writing.length;
  }

  /** Runs `claim` once its start is written. */
  startCarefully(claim: Claim): void {
    this.waiting.push(claim);
    this.careful ??= nextTurn(() => this.writeCarefulStarts()).finally(() => {
      this.careful = null;
    });
  }

  /** Marks a claim already running as started. */
  markLater(claim: Claim): void {
    this.unmarked.push(claim);
    this.marking ??= nextTurn(() => this.writeMarks()).finally(() => {
      this.marking = null;
    });
  }

  /** Stops retrying; resolves once the statements in flight have settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([this.careful, this.marking]);
  }

  /** Waits until nothing is waiting or being written. */
  async settled(): Promise<void> {
    while (this.careful || this.marking) await Promise.all([this.careful, this.marking]);
  }

  /** The careful starts that never started, to be handed back (after stop). */
  takeUnstarted(): Claim[] {
    return this.waiting.splice(0);
  }

  /**
   * Only what the API shows and what a crash would charge depend on a running job's mark, so a
   * failure is logged and the jobs run on.
   */
  private async writeMarks(): Promise<void> {
    while (this.unmarked.length > 0) {
      const batch = this.unmarked.splice(0).filter((claim) => this.options.isRunning(claim));
      if (batch.length === 0) continue;
      try {
        const startedAt = await jobStartMany(this.options.pool, this.options.workerId, batch);
        for (const claim of batch) if (startedAt.has(claim.job.job_id)) claim.marked = true;
        this.options.onStarted([...startedAt.keys()]);
      } catch (error) {
        this.options.logger.warn(
          { err: error, jobs: batch.length },
          'marking running jobs started failed; they run on',
        );
      }
    }
  }

  private async writeCarefulStarts(): Promise<void> {
    const backoff = new Backoff();
    while (this.waiting.length > 0) {
      this.writing = this.waiting.splice(0);
      let startedAt: Map<string, string>;
      try {
        startedAt = await jobStartMany(this.options.pool, this.options.workerId, this.writing);
      } catch (error) {
        this.waiting.unshift(...this.writing);
        this.writing = [];
        // Stopping: not started, so handed back with the buffer.
        if (this.stopping) return;
        const retryInMs = backoff.next();
        this.options.logger.error({ err: error, retryInMs }, 'starting claimed jobs failed; retrying');
        await sleep(retryInMs);
        continue;
      }
      backoff.reset();
      this.options.onStarted([...startedAt.keys()]);
      const batch = this.writing;
      this.writing = [];
      for (const claim of batch) {
        if (startedAt.has(claim.job.job_id)) {
          claim.marked = true;
          this.options.run(claim);
          continue;
        }
        // The claim was handed back meanwhile (this worker was presumed dead): not ours.
        this.options.logger.warn(
          { ix_id: claim.job.ix_id, job_id: claim.job.job_id },
          'claim handed back before it started; not running it',
        );
        this.options.drop(claim);
      }
    }
  }
}
