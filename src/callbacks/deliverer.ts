/**
 * The callback deliverer: claims due deliveries from the store, makes each attempt and records
 * its outcome. Runs beside the worker's claim loop on its own schedule, so a slow receiver
 * never holds up job claiming; `runOnce()` is the whole of one pass, the loop only schedules.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Config } from '../config.js';
import type { Job } from '../contracts/index.js';
import type { Logger } from '../log.js';
import { Loop } from '../loop.js';
import type { Metrics } from '../metrics/index.js';
import { type CallbackClaim, callbackClaimDue, callbackRecordAttempt } from '../store/index.js';
import { withTimeout } from '../time.js';
import { checkCallbackUrl, type GuardResult, type Resolver } from './guard.js';
import { type AttemptResult, judge, nextDelaySeconds } from './policy.js';
import { post } from './post.js';
import { signatureHeaders, webhookId } from './sign.js';

export interface CallbackDelivererOptions {
  pool: pg.Pool;
  config: Pick<Config, 'callbacks'>;
  logger: Logger;
  workerId?: string;
  /** Deliveries claimed (and attempted at once) per pass. */
  batchSize?: number;
  /** Idle wait between passes that found nothing to do. */
  idleMs?: number;
  /** The database clock for claims and records, injected so tests need no sleeping. */
  now?: () => Date | null;
  /** Host name resolution for the SSRF guard; default `dns.lookup`. */
  resolve?: Resolver;
  /** Jitter source; default Math.random. */
  random?: () => number;
  /** Where each attempt is counted. */
  metrics?: Metrics | null;
}

// The lease must outlast an attempt (lookup + request, each bounded by the timeout) plus the
// write of its outcome, or a live attempt would be taken over and sent twice.
const LEASE_SLACK_SECONDS = 30;

export class CallbackDeliverer {
  private readonly pool: pg.Pool;
  private readonly callbacks: Config['callbacks'];
  private readonly logger: Logger;
  private readonly batchSize: number;
  private readonly now: () => Date | null;
  private readonly resolve: Resolver | undefined;
  private readonly random: () => number;
  private readonly metrics: Metrics | null;
  private warnedUnsigned = false;
  private readonly loop: Loop;

  constructor(options: CallbackDelivererOptions) {
    this.pool = options.pool;
    this.callbacks = options.config.callbacks;
    const workerId = options.workerId ?? randomUUID();
    this.logger = options.logger.child({ component: 'callbacks', worker_id: workerId });
    this.batchSize = options.batchSize ?? 10;
    this.now = options.now ?? (() => null);
    this.resolve = options.resolve;
    this.random = options.random ?? Math.random;
    this.metrics = options.metrics ?? null;
    this.loop = new Loop({
      name: 'callback delivery pass',
      logger: this.logger,
      idleMs: options.idleMs ?? 1_000,
      pass: async () => (await this.runOnce()) >= this.batchSize,
    });
  }

  private get leaseSeconds(): number {
    return 2 * this.callbacks.timeoutSeconds + LEASE_SLACK_SECONDS;
  }

  /** Claims what is due and attempts each; returns how many attempts were made. */
  async runOnce(): Promise<number> {
    this.warnIfUnsigned();
    const claims = await callbackClaimDue(this.pool, this.batchSize, {
      leaseSeconds: this.leaseSeconds,
      firstDelaySeconds: this.callbacks.retryScheduleSeconds[0] ?? 0,
      now: this.now(),
    });
    const settled = await Promise.allSettled(claims.map((claim) => this.attempt(claim)));
    for (const [i, outcome] of settled.entries()) {
      if (outcome.status === 'fulfilled') continue;
      // Unrecorded, the attempt stays leased and is made again once the lease runs out.
      const { job } = claims[i]!;
      this.logger.error(
        { ix_id: job.ix_id, job_id: job.job_id, err: outcome.reason },
        'callback attempt could not be recorded',
      );
    }
    return claims.length;
  }

  /** Runs passes until stopped: straight on while there is a backlog, else every `idleMs` or when woken. */
  start(): void {
    this.warnIfUnsigned();
    this.loop.start();
  }

  /** Cuts an idle wait short, or skips the next one if a pass is running (jobs just finished). */
  wake(): void {
    this.loop.wake();
  }

  /** Stops the loop after the attempts in flight are recorded (each bounded by the timeout). */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  private warnIfUnsigned(): void {
    if (this.warnedUnsigned || this.callbacks.secrets.length > 0) return;
    this.warnedUnsigned = true;
    this.logger.warn('IX_CALLBACK_SECRET is not set: callbacks are sent unsigned');
  }

  private async attempt({ job, attempt }: CallbackClaim): Promise<void> {
    const log = this.logger.child({ ix_id: job.ix_id, job_id: job.job_id, attempt });
    const result = await this.send(job);
    const verdict = judge(result);
    let next: 'delivered' | 'failed' | { retryInSeconds: number };
    let error = verdict.kind === 'delivered' ? null : verdict.error;
    if (verdict.kind === 'retry') {
      const delay = nextDelaySeconds(
        this.callbacks.retryScheduleSeconds,
        attempt,
        verdict.retryAfterSeconds,
        this.random,
      );
      if (delay === null) {
        next = 'failed';
        error = `${verdict.error}; gave up after ${attempt} attempts`;
      } else {
        next = { retryInSeconds: delay };
      }
    } else {
      next = verdict.kind;
    }
    const applied = await callbackRecordAttempt(this.pool, job.job_id, attempt, {
      statusCode: result.statusCode,
      error,
      next,
      now: this.now(),
    });
    const fields = { status_code: result.statusCode, error };
    if (applied) this.metrics?.callbackAttempted(typeof next === 'string' ? next : 'retry', job.finished_at);
    if (!applied)
      log.warn(fields, 'callback attempt outcome not recorded: another deliverer took the attempt over');
    else if (next === 'delivered') log.info(fields, 'callback delivered');
    else if (next === 'failed') log.warn(fields, 'callback failed for good');
    else
      log.info(
        { ...fields, retry_in_seconds: Math.round(next.retryInSeconds) },
        'callback attempt failed; will retry',
      );
  }

  private async send(job: Job): Promise<AttemptResult> {
    if (job.callback_url === null) {
      return {
        statusCode: null,
        retryAfterSeconds: null,
        error: 'the job has no callback_url',
        retryable: false,
      };
    }
    const timeoutMs = this.callbacks.timeoutSeconds * 1000;
    let checked: GuardResult;
    try {
      // dns.lookup cannot be aborted: a slow one is only no longer waited for.
      checked = await withTimeout(
        checkCallbackUrl(job.callback_url, {
          allowPrivate: this.callbacks.allowPrivate,
          resolve: this.resolve,
        }),
        timeoutMs,
        () => new Error(`resolving the callback host timed out after ${timeoutMs} ms`),
      );
    } catch (error) {
      return { statusCode: null, retryAfterSeconds: null, error: (error as Error).message, retryable: true };
    }
    if (!checked.ok) {
      return {
        statusCode: null,
        retryAfterSeconds: null,
        error: checked.reason,
        retryable: checked.retryable,
      };
    }
    const body = Buffer.from(JSON.stringify(job));
    const id = webhookId(job.job_id);
    const timestamp = Math.floor(Date.now() / 1000);
    return post({
      url: checked.url,
      target: checked.target,
      headers: signatureHeaders(this.callbacks.secrets, id, timestamp, body),
      body,
      timeoutMs,
    });
  }
}
