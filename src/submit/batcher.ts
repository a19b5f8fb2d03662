import type pg from 'pg';
import {
  DatabaseUnavailableError,
  type InsertResult,
  isDatabaseUnavailable,
  jobInsertMany,
  Notifier,
  type Submission,
  withClientWithin,
} from '../store/index.js';

interface Waiting {
  submission: Submission;
  /** When its caller stops waiting (Date.now() time), queued or in a statement. */
  deadline: number;
  timer: NodeJS.Timeout;
  resolve: (result: InsertResult) => void;
  reject: (error: unknown) => void;
}

export interface SubmitBatcherOptions {
  /** How long a submission may wait, for its statement and in it, before it fails unavailable. */
  deadlineMs: number;
  /** Submissions waiting for a statement at most; one more fails at once with SubmitQueueFullError. */
  maxPending: number;
  /** Statements in flight at once; submissions arriving meanwhile wait and share the next. */
  maxInFlight?: number;
  maxBatch?: number;
  onNotifyError?: (error: unknown) => void;
}

/** As many submissions as allowed already wait for a statement: PostgreSQL is not keeping up. */
export class SubmitQueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`${limit} submissions are already waiting for the database`);
    this.name = 'SubmitQueueFullError';
  }
}

/**
 * Writes jobs for many concurrent callers (the API's requests) through shared statements:
 * whatever arrives while a batch is being written goes into the next one, so ten concurrent
 * submits cost one commit and one WAL flush instead of ten. Workers are woken after each
 * committed batch that created a job. A failed statement fails the submissions it carried,
 * and only those.
 *
 * Bounded, so a stuck database costs callers a fast answer rather than an unbounded wait: each
 * submission fails unavailable at its deadline, whether still queued (it is then dropped) or in
 * its statement (which is cancelled once nobody in it still waits), and a submission arriving at a
 * full queue fails at once. A submission failed while its statement commits is nevertheless
 * written: submits are idempotent, so the caller's retry finds it.
 */
export class SubmitBatcher {
  private waiting: Waiting[] = [];
  private inFlight = 0;
  private readonly deadlineMs: number;
  private readonly maxPending: number;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly notifier: Notifier;

  constructor(
    private readonly pool: pg.Pool,
    options: SubmitBatcherOptions,
  ) {
    this.deadlineMs = options.deadlineMs;
    this.maxPending = options.maxPending;
    // One statement at a time: whatever arrives meanwhile shares the next, so batches are
    // bigger and PostgreSQL's CPU per submit lower than with two in flight (docs/design.md,
    // "Costs measured on the hot path").
    this.maxInFlight = options.maxInFlight ?? 1;
    this.maxBatch = options.maxBatch ?? 500;
    this.notifier = Notifier.pending(pool, options.onNotifyError);
  }

  submit(submission: Submission): Promise<InsertResult> {
    if (this.waiting.length >= this.maxPending)
      return Promise.reject(new SubmitQueueFullError(this.maxPending));
    return new Promise((resolve, reject) => {
      const waiting: Waiting = {
        submission,
        deadline: Date.now() + this.deadlineMs,
        timer: setTimeout(() => this.expire(waiting), this.deadlineMs),
        resolve: (result) => {
          clearTimeout(waiting.timer);
          resolve(result);
        },
        reject: (error) => {
          clearTimeout(waiting.timer);
          reject(error);
        },
      };
      this.waiting.push(waiting);
      this.pump();
    });
  }

  /** Past its deadline: failed, and dropped if still queued (its statement, if any, goes on). */
  private expire(waiting: Waiting): void {
    const queued = this.waiting.indexOf(waiting);
    if (queued !== -1) this.waiting.splice(queued, 1);
    waiting.reject(
      new DatabaseUnavailableError(`the submission was not written within ${this.deadlineMs} ms`),
    );
  }

  /** Resolves once every submission so far is written and its workers notified. */
  async settled(): Promise<void> {
    while (this.inFlight > 0 || this.waiting.length > 0) await new Promise((r) => setImmediate(r));
    await this.notifier.settled();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight += 1;
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    // Until the last caller in the batch gives up; then nobody waits for the statement any more.
    const timeoutMs = Math.max(...batch.map((w) => w.deadline)) - Date.now();
    let results: InsertResult[];
    try {
      results = await withClientWithin(this.pool, timeoutMs, (db) =>
        jobInsertMany(
          db,
          batch.map((w) => w.submission),
        ),
      );
    } catch (error) {
      if (batch.length === 1 || isDatabaseUnavailable(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      // One bad submission (say, a string PostgreSQL cannot store) must not fail its
      // neighbours: write each alone, so the error reaches only its own caller.
      await Promise.all(batch.map((w) => this.write([w])));
      return;
    }
    if (results.some((r) => r.created)) this.notifier.notify();
    for (const [i, result] of results.entries()) batch[i]!.resolve(result);
  }
}
