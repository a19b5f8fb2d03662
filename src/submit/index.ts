/**
 * The one way in for a job, for the API and for `ix submit` alike: check what the body's schema
 * cannot (the callback URL's host), write the job (sharing a statement with concurrent submits),
 * and wake workers once it is committed.
 */
import type pg from 'pg';
import type { Config } from '../config.js';
import type { Job, SubmitBody } from '../contracts/index.js';
import type { Metrics } from '../metrics/index.js';
import { SubmitBatcher } from './batcher.js';
import { callbackUrlProblem } from './callback-url.js';

export { SubmitQueueFullError } from './batcher.js';
export { callbackUrlProblem } from './callback-url.js';

/** A field of the submission is unacceptable, for a reason its schema could not see. */
export class InvalidSubmissionError extends Error {
  constructor(
    /** JSONPath of the field in the submitted body, e.g. `$.callback_url`. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'InvalidSubmissionError';
  }
}

export interface SubmitServiceOptions {
  /** IX_CALLBACK_ALLOW_PRIVATE: callback URLs may name loopback and private addresses. */
  allowPrivateCallbacks: boolean;
  /** How long a submission may wait for its statement and in it (IX_API_DEADLINE_SECONDS). */
  deadlineMs: number;
  /** Submissions waiting for a statement at most (IX_API_MAX_PENDING_SUBMITS). */
  maxPending: number;
  /** The largest budget of runs a submission may ask for (IX_MAX_ATTEMPTS_CAP). */
  maxAttemptsCap: number;
  onNotifyError?: (error: unknown) => void;
  /** Where each new job is counted. */
  metrics?: Metrics | null;
}

export interface Submitted {
  job: Job;
  /** false when the key was submitted before: `job` is that first job, unchanged. */
  created: boolean;
}

export class SubmitService {
  private readonly batcher: SubmitBatcher;

  constructor(
    pool: pg.Pool,
    private readonly options: SubmitServiceOptions,
  ) {
    this.batcher = new SubmitBatcher(pool, options);
  }

  /**
   * Submits, idempotently on `(ix_client_id, request_id)`: the first submission of a key wins
   * and a replay returns its job; a different request under a used key throws the store's
   * IdempotencyConflictError, an unacceptable callback URL, both `run_after` and
   * `delay_seconds`, or a `max_attempts` over IX_MAX_ATTEMPTS_CAP an InvalidSubmissionError.
   */
  async submit(body: SubmitBody): Promise<Submitted> {
    const { request, callback_url: callbackUrl } = body;
    if (callbackUrl !== null) {
      const problem = callbackUrlProblem(callbackUrl, this.options.allowPrivateCallbacks);
      if (problem) throw new InvalidSubmissionError('$.callback_url', problem);
    }
    if (body.run_after !== null && body.delay_seconds !== null) {
      throw new InvalidSubmissionError(
        '$.delay_seconds',
        'give either run_after (a time) or delay_seconds (from now), not both',
      );
    }
    const cap = this.options.maxAttemptsCap;
    if (body.max_attempts !== null && body.max_attempts > cap) {
      throw new InvalidSubmissionError(
        '$.max_attempts',
        `must be at most ${cap} (IX_MAX_ATTEMPTS_CAP on this server), got ${body.max_attempts}`,
      );
    }
    const result = await this.batcher.submit({
      request,
      callbackUrl,
      runAfter: body.run_after,
      delaySeconds: body.delay_seconds,
      maxAttempts: body.max_attempts,
      priority: body.priority,
    });
    if (result.job === null || result.conflict) throw result.conflict;
    if (result.created) this.options.metrics?.jobSubmitted(result.job.client_id);
    return { job: result.job, created: result.created };
  }

  /** Resolves once every submission so far is written and its workers woken. */
  settled(): Promise<void> {
    return this.batcher.settled();
  }

  /** The service as the settings describe it, for the API and for `ix submit`. */
  static fromConfig(
    pool: pg.Pool,
    config: Config,
    onNotifyError?: (error: unknown) => void,
    metrics: Metrics | null = null,
  ): SubmitService {
    return new SubmitService(pool, {
      allowPrivateCallbacks: config.callbacks.allowPrivate,
      deadlineMs: config.api.deadlineSeconds * 1000,
      maxPending: config.api.maxPendingSubmits,
      maxAttemptsCap: config.api.maxAttemptsCap,
      ...(onNotifyError ? { onNotifyError } : {}),
      metrics,
    });
  }
}
