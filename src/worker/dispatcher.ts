import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Job } from '../contracts/index.js';
import {
  claimPending,
  completeMany,
  type Outcome,
  PENDING_CHANNEL,
  releaseJobs,
  workerHeartbeat,
  workerRemove,
} from '../store/index.js';
import { Listener } from './listener.js';
import type { Pipeline } from './pipeline.js';
import { JobAbort, runPipeline } from './run.js';
import { Sweeper } from './sweeper.js';

export interface WorkerOptions {
  pool: pg.Pool;
  /** For the LISTEN connection, which lives outside the pool. */
  connectionString: string;
  config: Config['worker'];
  pipeline: Pipeline;
  logger: Logger;
  workerId?: string;
  /** Called after outcomes of jobs with a callback URL were recorded (to wake delivery at once). */
  onCallbacksDue?: () => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Claims jobs (as many as it has free slots, plus `prefetch`), runs each through the pipeline
 * at most `concurrency` at a time, and records outcomes in batches. Wakes on NOTIFY, polls as a
 * fallback, renews its heartbeat, sweeps orphans, and on stop puts back what it cannot finish.
 */
export class Worker {
  readonly workerId: string;
  private readonly logger: Logger;
  private readonly sweeper: Sweeper;
  private readonly listener: Listener;
  /** Claimed and not yet recorded (buffered, running, or awaiting the completion batch). */
  private readonly held = new Map<string, Job>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly aborts = new Map<string, JobAbort>();
  private buffer: Job[] = [];
  private completions: Outcome[] = [];
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  private flushing: Promise<void> | null = null;
  private registered = false;
  private started = false;
  private stopping: Promise<void> | null = null;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId ?? randomUUID();
    this.logger = options.logger.child({ worker_id: this.workerId });
    this.sweeper = new Sweeper(options.pool, options.config, this.logger);
    this.listener = new Listener(options.connectionString, PENDING_CHANNEL, () => this.wake(), this.logger);
  }

  private get config(): Config['worker'] {
    return this.options.config;
  }

  /** Jobs held here (buffered, running, or with an unrecorded outcome). */
  get heldCount(): number {
    return this.held.size;
  }

  async start(): Promise<void> {
    await this.register();
    this.started = true;
    this.heartbeatTimer = setInterval(
      () => void this.heartbeat(),
      this.config.heartbeatIntervalSeconds * 1000,
    );
    this.sweeper.start();
    await this.listener.start();
    this.pollTimer = setInterval(() => this.wake(), this.config.pollIntervalMs);
    this.logger.info(
      { concurrency: this.config.concurrency, prefetch: this.config.prefetch },
      'worker started',
    );
    this.wake();
  }

  /**
   * One claim of as many jobs as there are free slots, each run to its recorded outcome; for
   * tests, which drive the worker step by step. Returns how many jobs it ran.
   */
  async runOnce(): Promise<number> {
    await this.register();
    const claimed = await this.claim();
    await this.drain();
    return claimed;
  }

  /** Stops claiming, lets running jobs finish within the grace period, puts the rest back. */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async register(): Promise<void> {
    if (this.registered) return;
    await workerHeartbeat(this.options.pool, this.workerId);
    this.registered = true;
  }

  private async heartbeat(): Promise<void> {
    try {
      await workerHeartbeat(this.options.pool, this.workerId);
    } catch (error) {
      this.logger.error({ err: error }, 'heartbeat failed; jobs may be rescued if it keeps failing');
    }
  }

  private freeSlots(): number {
    const capacity = this.config.concurrency + this.config.prefetch;
    // Outcomes not yet recorded do not hold a slot, so the next batch is claimed and run while
    // the last one is written; but two capacities of them stop claiming, so a slow database
    // slows the worker down instead of piling held jobs up in memory.
    const unrecorded = this.held.size - this.inFlight.size - this.buffer.length;
    if (unrecorded >= 2 * capacity) return 0;
    return capacity - this.inFlight.size - this.buffer.length;
  }

  /**
   * With a prefetch buffer, claim again only once a quarter of the capacity is free: a few
   * large claims cost far fewer round trips than one per finished job (traced: a claim of 1
   * after every claim of 1,009). Without one, any free slot is worth a claim (slow pipelines,
   * where a round trip is nothing).
   */
  private minimumClaim(): number {
    if (this.config.prefetch === 0) return 1;
    return Math.max(1, Math.floor((this.config.concurrency + this.config.prefetch) / 4));
  }

  /** Asks for a claim now; coalesces with one in progress. */
  wake(): void {
    if (!this.started || this.stopping) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = null;
    });
  }

  private async claimLoop(): Promise<void> {
    let backoffMs = 100;
    do {
      this.claimAgain = false;
      const free = this.freeSlots();
      if (free < this.minimumClaim()) return;
      try {
        const claimed = await this.claim();
        backoffMs = 100;
        // A full batch means more may be waiting: keep going while slots are free.
        if (claimed === free) this.claimAgain = true;
      } catch (error) {
        this.logger.error({ err: error, retryInMs: backoffMs }, 'claim failed; retrying');
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5_000);
        this.claimAgain = true;
      }
    } while (this.claimAgain && !this.stopping);
  }

  private async claim(): Promise<number> {
    const free = this.freeSlots();
    if (free <= 0) return 0;
    const jobs = await claimPending(this.options.pool, free, this.workerId);
    for (const job of jobs) this.held.set(job.job_id, job);
    this.buffer.push(...jobs);
    this.startBuffered();
    return jobs.length;
  }

  private startBuffered(): void {
    while (this.inFlight.size < this.config.concurrency && this.buffer.length > 0 && !this.stopping) {
      const job = this.buffer.shift()!;
      const run = this.run(job).finally(() => {
        this.inFlight.delete(job.job_id);
        this.startBuffered();
        this.wake();
      });
      this.inFlight.set(job.job_id, run);
    }
  }

  private async run(job: Job): Promise<void> {
    const jobLogger = () =>
      this.logger.child({ ix_id: job.ix_id, job_id: job.job_id, attempt: job.attempts });
    const abort = new JobAbort();
    this.aborts.set(job.job_id, abort);
    const response = await runPipeline(this.options.pipeline, job, {
      timeoutSeconds: this.config.requestTimeoutSeconds,
      abort,
      logger: jobLogger,
    });
    this.aborts.delete(job.job_id);
    // Put back at shutdown: its outcome no longer belongs to this worker.
    if (!this.held.has(job.job_id)) return;
    if (response.error !== null) jobLogger().info({ error: response.error }, 'job ended in error');
    this.completions.push({
      jobId: job.job_id,
      attempt: job.attempts,
      response,
      status: response.error === null ? 'done' : 'error',
    });
    this.flush();
  }

  /** Records outcomes in batches: one statement for everything that finished meanwhile. */
  private flush(): Promise<void> {
    // Starts on the next turn of the event loop, so every job that finished in this one shares
    // the statement (fast pipelines finish hundreds per turn; traced: a batch of 1, then 1,009).
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flushLoop())
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  private async flushLoop(): Promise<void> {
    let backoffMs = 100;
    while (this.completions.length > 0) {
      const batch = this.completions;
      this.completions = [];
      try {
        const applied = await completeMany(this.options.pool, batch);
        let callbacksDue = false;
        for (const outcome of batch) {
          if (applied.has(outcome.jobId) && this.held.get(outcome.jobId)?.callback_url) callbacksDue = true;
          this.held.delete(outcome.jobId);
          if (!applied.has(outcome.jobId)) {
            const job = { ix_id: outcome.response.ix_id, job_id: outcome.jobId };
            this.logger.warn(job, 'outcome discarded: the job was rescued and belongs to a newer attempt');
          }
        }
        backoffMs = 100;
        // Only then: a delivery pass per batch of callback-less jobs would be a wasted query.
        if (callbacksDue) this.options.onCallbacksDue?.();
      } catch (error) {
        // Outcomes are fenced on their attempt, so writing them again later is safe.
        this.completions.unshift(...batch);
        this.logger.error({ err: error, retryInMs: backoffMs }, 'recording outcomes failed; retrying');
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
      this.wake();
    }
  }

  /** Waits until nothing is running, buffered or unrecorded. */
  private async drain(): Promise<void> {
    for (;;) {
      if (this.inFlight.size > 0) await Promise.all(this.inFlight.values());
      else if (this.completions.length > 0 || this.flushing) await this.flush();
      else return;
    }
  }

  private async release(jobs: Job[], countAttempt: boolean): Promise<void> {
    if (jobs.length === 0) return;
    for (const job of jobs) this.held.delete(job.job_id);
    try {
      await releaseJobs(
        this.options.pool,
        jobs.map((job) => ({ jobId: job.job_id, attempt: job.attempts })),
        countAttempt,
      );
      this.logger.info({ job_ids: jobs.map((j) => j.job_id), countAttempt }, 'put jobs back to pending');
    } catch (error) {
      // The sweeper rescues them once this worker's heartbeat is gone.
      this.logger.error({ err: error }, 'could not put jobs back; the sweeper will rescue them');
    }
  }

  private async shutDown(): Promise<void> {
    this.logger.info({ held: this.held.size }, 'worker stopping');
    clearInterval(this.pollTimer);
    this.sweeper.stop();
    await this.listener.close();
    await this.claiming;
    // Prefetched jobs never started: back to the queue without counting an attempt.
    await this.release(this.buffer.splice(0), false);

    const graceMs = this.config.shutdownGraceSeconds * 1000;
    let graceTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.inFlight.values()),
      new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(graceTimer);
    if (this.inFlight.size > 0) {
      const unfinished = [...this.inFlight.keys()]
        .map((id) => this.held.get(id))
        .filter((j) => j !== undefined);
      await this.release(unfinished, true);
      for (const abort of this.aborts.values()) abort.abort(new Error('worker shutting down'));
      await Promise.all(this.inFlight.values());
    }
    await this.drain();
    clearInterval(this.heartbeatTimer);
    try {
      if (this.registered) await workerRemove(this.options.pool, this.workerId);
    } catch (error) {
      this.logger.error({ err: error }, 'could not deregister the worker');
    }
    this.logger.info('worker stopped');
  }
}
