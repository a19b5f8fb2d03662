import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Loop } from '../loop.js';
import type { Metrics } from '../metrics/index.js';
import {
  CANCEL_CHANNEL,
  CANCELLED_ERROR,
  jobClaimMany,
  jobNextReadyInMs,
  Listener,
  Notifier,
  PENDING_CHANNEL,
} from '../store/index.js';
import { Pace, settlesWithin } from '../time.js';
import { ClaimBuffer } from './buffer.js';
import { type Claim, newClaim, startsCarefully } from './claim.js';
import { ClaimWakes } from './claim-wakes.js';
import { Completer, type Finished } from './completer.js';
import { handBack } from './hand-back.js';
import { Heartbeat } from './heartbeat.js';
import { HeldClaims } from './held.js';
import { finishedRun } from './outcome.js';
import type { Pipeline } from './pipeline.js';
import { ProgressRecorder } from './progress.js';
import { Runs } from './runs.js';
import { Starter } from './starter.js';
import { Sweeper } from './sweeper.js';

export interface WorkerOptions {
  pool: pg.Pool;
  /** For the LISTEN connection, which lives outside the pool; null: none, the claim loop polls. */
  connectionString: string | null;
  config: Config['worker'];
  pipeline: Pipeline;
  logger: Logger;
  workerId?: string;
  /** Called after outcomes of jobs with a callback URL were recorded (to wake delivery at once). */
  onCallbacksDue?: () => void;
  /** The process's metrics: runs, outcomes, queue waits and rescues are counted there. */
  metrics?: Metrics | null;
  /** `max_running` of a client without its own (IX_CLIENT_MAX_RUNNING); null or absent: none. */
  defaultMaxRunning?: number | null;
}

/** After the grace period, how long aborted pipelines get to return before stop goes on without them. */
const ABORT_WAIT_MS = 1_000;
/** After the grace period, how long stop keeps trying to record outcomes and hand jobs back. */
const RECORD_WAIT_MS = 2_000;

/**
 * Claims jobs (as many as it has free slots, plus `prefetch`), runs each through the pipeline
 * at most `concurrency` at a time, and hands outcomes to its Completer. Wakes on NOTIFY, polls as
 * a fallback, renews its heartbeat, sweeps orphans, and on stop hands back what it cannot finish.
 *
 * Every claim it holds is in `held` and in exactly one of: `buffer` (claimed, not started), the
 * starter (a careful start being written, see startsCarefully), `runs` (in the pipeline), or
 * the completer (finished, outcome not recorded yet). A claim leaves `held` when its outcome is
 * recorded or discarded, or when it is handed back.
 */
export class Worker {
  readonly workerId: string;
  private readonly logger: Logger;
  private readonly sweeper: Sweeper;
  private readonly listener: Listener;
  /** When a notification or a job's end asks for a claim, and when the pace lets it (see ClaimWakes). */
  private readonly wakes = new ClaimWakes(
    () => this.wake(),
    () => this.batchIntervalMs(),
  );
  private readonly completer: Completer;
  private readonly held = new HeldClaims((leaseId) => this.completer.endLease(leaseId));
  private readonly buffer = new ClaimBuffer();
  private readonly runs: Runs;
  private readonly claimLoop: Loop;
  private readonly heartbeat: Heartbeat;
  private readonly starter: Starter;
  private readonly progress: ProgressRecorder;
  /** Tells API processes (src/watch/) which jobs started, progressed or ended. */
  private readonly changes: Notifier;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId ?? randomUUID();
    this.logger = options.logger.child({ worker_id: this.workerId });
    this.heartbeat = new Heartbeat(options.pool, this.workerId, options.config, this.logger, (jobId) =>
      this.cancel(jobId),
    );
    this.sweeper = new Sweeper(
      options.pool,
      options.config,
      this.logger,
      () => this.heartbeat.judgesOthers(),
      options.metrics,
    );
    this.listener = new Listener(
      options.connectionString,
      {
        [PENDING_CHANNEL]: () => this.wakes.heard(),
        [CANCEL_CHANNEL]: (jobId) => this.cancel(jobId),
      },
      () => this.wake(),
      this.logger,
    );
    this.completer = new Completer({
      pool: options.pool,
      workerId: this.workerId,
      maxAttempts: options.config.maxAttempts,
      logger: this.logger,
      metrics: options.metrics ?? null,
      pace: new Pace(() => this.batchIntervalMs()),
      onSettled: (applied, dropped) => this.settled(applied, dropped),
    });
    this.changes = Notifier.changed(options.pool, (error) =>
      this.logger.warn({ err: error }, 'could not tell watchers of job changes; they will poll'),
    );
    this.progress = new ProgressRecorder({
      pool: options.pool,
      logger: this.logger,
      isRunning: (claim) => this.runs.has(claim),
      onRecorded: (jobIds) => this.changes.notify(jobIds),
    });
    this.runs = new Runs({
      pipeline: options.pipeline,
      config: options.config,
      logger: this.logger,
      metrics: options.metrics ?? null,
      progress: this.progress,
      finished: (claim, run) => {
        // Handed back at shutdown: its outcome no longer belongs to this worker.
        if (this.held.has(claim)) this.completer.add(finishedRun(claim, run, this.config));
      },
      ended: (claim) => {
        this.buffer.ended(claim);
        this.startBuffered();
        this.wakes.roomMade(false);
      },
    });
    this.starter = new Starter({
      pool: options.pool,
      workerId: this.workerId,
      logger: this.logger,
      onStarted: (jobIds) => this.changes.notify(jobIds),
      run: (claim) => this.runs.start(claim),
      drop: (claim) => {
        this.forget(claim);
        this.startBuffered();
      },
      isRunning: (claim) => this.runs.has(claim),
    });
    // Woken by NOTIFY and by every freed slot; the idle wait is the fallback poll.
    this.claimLoop = new Loop({
      name: 'claim',
      logger: this.logger,
      idleMs: options.config.pollIntervalMs,
      pass: async () => {
        const free = this.freeSlots();
        if (free < this.minimumClaim()) return false;
        const pacedForMs = this.wakes.pacedForMs();
        if (pacedForMs > 0) return pacedForMs;
        const answering = this.wakes.claimBegins();
        const claimed = await this.claim();
        if (claimed === null) return false;
        this.wakes.claimEnded(claimed, free, answering);
        // A full batch means more may be waiting: go on while slots are free.
        if (claimed > 0) return claimed === free;
        // Nothing ready: a job that becomes due later (scheduled, or a retry's backoff) sends no
        // NOTIFY, so sleep only until then. Asked only by a claim that found nothing, so a busy
        // worker pays no extra statement.
        const dueInMs = await jobNextReadyInMs(this.options.pool);
        return dueInMs === null ? false : Math.min(dueInMs, options.config.pollIntervalMs);
      },
    });
  }

  private get config(): Config['worker'] {
    return this.options.config;
  }

  /** The pace of claims and of outcome writes: the fleet's interval, shared by its live workers. */
  private batchIntervalMs(): number {
    return this.config.batchIntervalMs * this.heartbeat.liveWorkers;
  }

  /** Claims held here (buffered, starting, running, or with an unrecorded outcome). */
  get heldCount(): number {
    return this.held.size;
  }

  async start(): Promise<void> {
    // The listen connection is made while the worker registers and claims: once it listens it
    // wakes the claim loop (onReconnect), so a job submitted before then is still claimed at
    // once. Made first, it delayed the first job by its connection and LISTENs (~5–10 ms here).
    const listening = this.listener.start();
    try {
      await this.heartbeat.register();
    } catch (error) {
      await this.listener.close();
      throw error;
    }
    this.heartbeat.start();
    // First: the claim takes the connection registering used, and the sweep opens another.
    this.claimLoop.start();
    this.sweeper.start();
    this.progress.start();
    await listening;
    this.logger.info(
      {
        concurrency: this.config.concurrency,
        prefetch: this.config.prefetch,
        batchIntervalMs: this.config.batchIntervalMs,
        liveWorkers: this.heartbeat.liveWorkers,
      },
      'worker started',
    );
  }

  /**
   * One claim of as many jobs as there are free slots, each run to its recorded outcome; for
   * tests, which drive the worker step by step. Returns how many jobs it claimed.
   */
  async runOnce(): Promise<number> {
    await this.heartbeat.register();
    const claimed = (await this.claim()) ?? 0;
    await this.settle();
    return claimed;
  }

  /** Stops claiming, lets running jobs finish within the grace period, hands back the rest. */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private get startedOrStarting(): number {
    return this.runs.size + this.starter.starting;
  }

  private freeSlots(): number {
    const capacity = this.config.concurrency + this.config.prefetch;
    // Outcomes not yet recorded do not hold a slot, so the next batch is claimed and run while
    // the last one is written; but two capacities of them stop claiming, so a slow database
    // slows the worker down instead of piling held jobs up in memory.
    if (this.completer.size >= 2 * capacity) return 0;
    return capacity - this.startedOrStarting - this.buffer.length;
  }

  /**
   * With a prefetch buffer, claim again only once a quarter of the capacity is free: a few
   * large claims cost far fewer round trips than one per finished job (docs/design.md, "Costs
   * measured on the hot path"). Without one, any free slot is worth a claim (slow pipelines,
   * where a round trip is nothing).
   */
  private minimumClaim(): number {
    if (this.config.prefetch === 0) return 1;
    return Math.max(1, Math.floor((this.config.concurrency + this.config.prefetch) / 4));
  }

  /** Asks for a claim now; coalesces with one in progress. */
  wake(): void {
    // Called as every job finishes: a pass that would only find too few free slots is not worth
    // its wake-up (a pass and a fresh idle timer per job). When slots free up, this is called
    // again; the idle wait still polls.
    if (!this.stopping && this.freeSlots() >= this.minimumClaim()) this.claimLoop.wake();
  }

  /**
   * A client cancelled this job: a running pipeline is aborted, and its outcome recorded as
   * `cancelled`; a claim still buffered is let go (the cancellation ended the job and its lease).
   * Idempotent, as both the notification and each heartbeat may tell it.
   */
  cancel(jobId: string): void {
    for (const claim of this.held) {
      if (claim.job.job_id !== jobId) continue;
      if (this.buffer.remove(claim)) {
        this.forget(claim);
        continue;
      }
      if (!this.runs.has(claim) || claim.cancelled) continue;
      claim.cancelled = true;
      this.logger.info({ ix_id: claim.job.ix_id, job_id: jobId }, 'job cancelled; aborting its pipeline');
      claim.abort?.abort(new Error(CANCELLED_ERROR));
    }
  }

  /** Claims for the free slots; the number claimed, or null when there was no room to claim. */
  private async claim(): Promise<number | null> {
    const free = this.freeSlots();
    const budget = this.config.maxHeldBytes - this.held.bytes;
    if (free <= 0 || budget <= 0) return null;
    // The oldest start at once while slots are free; the rest wait in the buffer, unstarted.
    const startNow = Math.max(0, this.config.concurrency - this.startedOrStarting - this.buffer.length);
    const claimed = await jobClaimMany(this.options.pool, {
      limit: free,
      workerId: this.workerId,
      startNow,
      maxInputBytes: budget,
      defaultMaxRunning: this.options.defaultMaxRunning ?? null,
    });
    const started: string[] = [];
    const claims = claimed.map(newClaim);
    this.held.claimed(claims);
    for (const claim of claims) {
      if (claim.marked) {
        started.push(claim.job.job_id);
        this.runs.start(claim);
      } else this.buffer.add(claim);
    }
    this.changes.notify(started);
    this.startBuffered();
    return claimed.length;
  }

  /** Moves buffered claims into free slots, in the order they were claimed. */
  private startBuffered(): void {
    while (!this.stopping) {
      const claim = this.buffer.next(this.startedOrStarting, this.config.concurrency);
      if (claim === null) return;
      if (startsCarefully(claim)) {
        this.starter.startCarefully(claim);
      } else {
        this.runs.start(claim);
        this.starter.markLater(claim);
      }
    }
  }

  private settled(applied: readonly Finished[], dropped: readonly Finished[]): void {
    this.changes.notify(applied.map(({ claim }) => claim.job.job_id));
    let callbacksDue = false;
    for (const { claim } of applied) {
      if (claim.job.callback_url) callbacksDue = true;
      this.forget(claim);
    }
    for (const { claim, unrecorded } of dropped) this.forget(claim, !unrecorded);
    // Only then: a delivery pass per batch of callback-less jobs would be a wasted query.
    if (callbacksDue) this.options.onCallbacksDue?.();
    for (const { retryInSeconds } of applied)
      if (retryInSeconds !== null) this.wakes.retryDueIn(retryInSeconds * 1000);
    this.wakes.roomMade([...applied, ...dropped].some((f) => f.claim.limited));
  }

  /** `claim` is no longer this worker's; `left`: nor its lease's (see HeldClaims.forget). */
  private forget(claim: Claim, left = true): void {
    this.buffer.ended(claim);
    this.held.forget(claim, left);
  }

  /** Waits until nothing is buffered, starting, running or unrecorded. */
  private async settle(): Promise<void> {
    for (;;) {
      if (this.runs.size > 0) await this.runs.settled();
      else if (this.starter.starting > 0) await this.starter.settled();
      else if (!this.completer.idle) await this.completer.drain(Number.POSITIVE_INFINITY);
      else if (this.buffer.length > 0 && !this.stopping) {
        const waiting = this.buffer.length;
        this.startBuffered();
        if (this.buffer.length === waiting) return;
      } else return;
    }
  }

  private async handBack(claims: Claim[], ms: number): Promise<void> {
    const held = claims.filter((claim) => this.held.has(claim));
    for (const claim of held) this.forget(claim, false);
    if (await handBack(this.options.pool, this.logger, claims, ms))
      for (const claim of held) this.held.left(claim);
  }

  private async shutDown(): Promise<void> {
    const graceEnds = Date.now() + this.config.shutdownGraceSeconds * 1000;
    const untilGraceEnds = () => Math.max(0, graceEnds - Date.now());
    this.logger.info({ held: this.held.size }, 'worker stopping');
    this.wakes.stop();
    // A claim or start statement in flight may still bring jobs: wait for it, boundedly.
    await settlesWithin(
      Promise.all([this.claimLoop.stop(), this.sweeper.stop(), this.listener.close()]),
      untilGraceEnds(),
    );
    await settlesWithin(this.starter.stop(), untilGraceEnds());
    // Claims that never started go back as they were.
    const unstarted = [...this.starter.takeUnstarted(), ...this.buffer.takeAll()];
    await this.handBack(unstarted, untilGraceEnds() + RECORD_WAIT_MS);

    await settlesWithin(this.runs.settled(), untilGraceEnds());
    if (this.runs.size > 0) {
      // Whether each is marked started decides how it goes back: let a mark in flight land.
      await settlesWithin(this.starter.settled(), RECORD_WAIT_MS);
      const unfinished = this.runs.claims();
      await this.handBack(unfinished, RECORD_WAIT_MS);
      for (const claim of unfinished) claim.abort?.abort(new Error('worker shutting down'));
      // A pipeline that ignores its abort signal is not waited for: its job is back already.
      await settlesWithin(this.runs.settled(), ABORT_WAIT_MS);
    }
    await this.completer.drain(Math.max(graceEnds, Date.now()) + RECORD_WAIT_MS);
    await settlesWithin(Promise.all([this.progress.stop(), this.changes.settled()]), RECORD_WAIT_MS);
    await this.heartbeat.stop(RECORD_WAIT_MS);
    this.logger.info('worker stopped');
  }
}
