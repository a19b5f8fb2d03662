/**
 * What a pipeline is, for those who write one: `import type { Pipeline } from 'ix/pipeline'`.
 * A run ends in one of three ways:
 * - success: return `{ result }`;
 * - permanent failure, the job ends `error`: return `{ error }`;
 * - retryable failure, the job runs again after a backoff (while its budget of runs,
 *   IX_MAX_ATTEMPTS, lasts): return `{ error, retryable: true, retryAfterSeconds? }`, or throw
 *   `new RetryableError(message, { afterSeconds })`. Anything else thrown counts as retryable too,
 *   and so does a run that outlives IX_PIPELINE_REQUEST_TIMEOUT_SECONDS.
 */
import type { Logger } from 'pino';
import type { JsonValue, ProgressReport, RequestIX } from '../contracts/index.js';

export type { ProgressReport } from '../contracts/index.js';

export interface PipelineContext {
  /** Aborted when the job times out or the worker shuts down; long work should listen. */
  signal: AbortSignal;
  ix_id: string;
  job_id: string;
  /** 0 on the first run; +1 each time the job was retried or rescued from a dead worker. */
  attempt: number;
  /** Bound to `ix_id` and `job_id`. */
  logger: Logger;
  /**
   * Reports how far the run has come: `{ percent?: 0–100, stage?, message? }`, shown in
   * `GET /jobs/{id}` and the job's event stream. Call it as often as you like: the latest report
   * is stored about once a second. A malformed report is logged and ignored.
   */
  progress(report: ProgressReport): void;
}

export type PipelineResult =
  | { result: JsonValue }
  | {
      error: string;
      /** Run the job again later (true), or end it `error` now (absent or false). */
      retryable?: boolean;
      /** With `retryable`: wait at least this long (capped by IX_RETRY_MAX_SECONDS). */
      retryAfterSeconds?: number;
    };

/** What ix runs for each job: users' own code, the `http` forwarder, or `echo`. */
export type Pipeline = (request: RequestIX, ctx: PipelineContext) => Promise<PipelineResult>;

/** Thrown by a pipeline: this run failed, but a later one may succeed. */
export class RetryableError extends Error {
  /** Seconds to wait at least before the next run; undefined: the backoff decides. */
  readonly afterSeconds: number | undefined;

  constructor(message: string, options: { afterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetryableError';
    this.afterSeconds = options.afterSeconds;
  }
}
