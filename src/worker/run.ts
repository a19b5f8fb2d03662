import type { Logger } from 'pino';
import type { Job, ProgressReport, ResponseIX } from '../contracts/index.js';
import { withTimeout } from '../time.js';
import type { Pipeline, PipelineContext, RetryableError } from './pipeline.js';

/** What a run needs of its job: the request, and who it is for the pipeline's context and logs. */
export type RunnableJob = Pick<Job, 'ix_id' | 'job_id' | 'attempts' | 'request'>;

export class PipelineTimeoutError extends Error {
  constructor(readonly seconds: number) {
    super(`pipeline timed out after ${seconds} s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)`);
    this.name = 'PipelineTimeoutError';
  }
}

/**
 * A job's abort switch whose AbortSignal exists only once a pipeline asks for it: an
 * AbortController per job costs a fast worker a measurable share of its CPU (docs/design.md,
 * "Costs measured on the hot path"), and most fast pipelines never look at the signal.
 */
export class JobAbort {
  private controller: AbortController | null = null;
  private aborted = false;
  private reason: unknown;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

export interface RunOptions {
  timeoutSeconds: number;
  /** The job's abort switch: fired on timeout, and by the worker at shutdown after the grace. */
  abort: JobAbort;
  /** Builds the job's logger (bound to ix_id and job_id) if the pipeline or a failure needs one. */
  logger: () => Logger;
  /** Takes what the pipeline reports of its progress; absent: reports are dropped. */
  progress?: (report: ProgressReport) => void;
}

/** A run's response, and whether its failure is worth another run. */
export interface RunOutcome {
  response: ResponseIX;
  /** null: success, or a permanent failure; else a retryable failure, and how long the pipeline asked to wait. */
  retry: { afterSeconds: number | null } | null;
}

/** Seconds a pipeline asked to wait, when it is a number worth using. */
function askedDelay(seconds: unknown): number | null {
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * Told by its name rather than by instanceof: a pipeline module may import `ix/pipeline` from its
 * own copy of ix, whose class is another one.
 */
function isRetryableError(error: unknown): error is Partial<RetryableError> & Error {
  return error instanceof Error && error.name === 'RetryableError';
}

/**
 * What a pipeline is handed beside the request. A class rather than an object literal with
 * getters, whose closures and accessors cost 776 bytes and 0.74 µs a job against 72 bytes and
 * 0.07 µs (docs/design.md, "Costs measured on the hot path"); its own fields are private (#), so
 * a pipeline that logs its context sees only the job's identifiers.
 */
class JobContext implements PipelineContext {
  readonly ix_id: string;
  readonly job_id: string;
  readonly attempt: number;
  readonly #options: RunOptions;
  #logger: Logger | undefined;

  constructor(job: RunnableJob, options: RunOptions) {
    this.ix_id = job.ix_id;
    this.job_id = job.job_id;
    this.attempt = job.attempts;
    this.#options = options;
  }

  get signal(): AbortSignal {
    return this.#options.abort.signal;
  }

  /** A child logger costs more than a no-op job itself (docs/design.md, "Costs measured on the hot path"): made on first use. */
  get logger(): Logger {
    this.#logger ??= this.#options.logger();
    return this.#logger;
  }

  progress(report: ProgressReport): void {
    this.#options.progress?.(report);
  }
}

/**
 * Runs one job through the pipeline and always comes back with a response: a pipeline that
 * throws, returns garbage or outlives its timeout yields an error response, never a crash. The
 * timeout wins even against a pipeline that ignores its signal. A throw and a timeout are
 * retryable (the failure is the run's, not the request's); garbage returned is not (the same
 * code would return it again).
 */
export async function runPipeline(
  pipeline: Pipeline,
  job: RunnableJob,
  options: RunOptions,
): Promise<RunOutcome> {
  const ctx = new JobContext(job, options);
  try {
    // A pipeline written in JavaScript may return its result itself rather than a promise.
    const running = Promise.resolve(pipeline(job.request, ctx));
    const outcome = await withTimeout(running, options.timeoutSeconds * 1000, () => {
      const error = new PipelineTimeoutError(options.timeoutSeconds);
      options.abort.abort(error);
      return error;
    });
    if (outcome !== null && typeof outcome === 'object') {
      if ('error' in outcome && typeof outcome.error === 'string') {
        const response = { ix_id: job.ix_id, error: outcome.error, result: null };
        if (outcome.retryable !== true) return { response, retry: null };
        return { response, retry: { afterSeconds: askedDelay(outcome.retryAfterSeconds) } };
      }
      if ('result' in outcome && outcome.result !== undefined) {
        return { response: { ix_id: job.ix_id, error: null, result: outcome.result }, retry: null };
      }
    }
    const error = 'pipeline returned neither { result } nor { error: string }';
    return { response: { ix_id: job.ix_id, error, result: null }, retry: null };
  } catch (error) {
    // Only the message reaches the client: stack traces stay in ix's logs.
    const message = error instanceof Error ? error.message : String(error);
    if (!(error instanceof PipelineTimeoutError || isRetryableError(error)))
      ctx.logger.warn({ err: error }, 'pipeline threw');
    return {
      response: { ix_id: job.ix_id, error: message || 'pipeline failed without a message', result: null },
      retry: { afterSeconds: isRetryableError(error) ? askedDelay(error.afterSeconds) : null },
    };
  }
}
