/** What the client throws: the API's errors, in their shape, and a wait that gave up. */
import type { Job } from '../contracts/index.js';

export interface IxErrorDetail {
  in: string;
  path: string;
  message: string;
}

/**
 * The API answered with an error: its status and the `{error: {code, message, details, job_id, job}}`
 * body. `jobId` is set on 409 `idempotency_conflict`: the job that already holds the request id,
 * submitted with a different input or callback_url. On 409 `job_finished` (a cancel came too
 * late), `jobId` names the job and `job` is the job as it stands, ended `done` or `error`.
 */
export class IxApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: IxErrorDetail[] = [],
    readonly jobId: string | null = null,
    readonly job: Job | null = null,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'IxApiError';
  }
}

/** `waitFor` gave up before the job finished. */
export class IxWaitTimeoutError extends Error {
  constructor(
    readonly jobId: string,
    readonly lastStatus: Job['status'],
    timeoutMs: number,
  ) {
    super(`job ${jobId} still ${lastStatus} after ${timeoutMs} ms`);
    this.name = 'IxWaitTimeoutError';
  }
}

/** The API's error body as an IxApiError; a body not in its shape (a proxy answered) as `http_error`. */
export function toApiError(status: number, body: unknown, text: string): IxApiError {
  const error = (
    body as {
      error?: { code?: unknown; message?: unknown; details?: unknown; job_id?: unknown; job?: unknown };
    } | null
  )?.error;
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    return new IxApiError(
      status,
      error.code,
      error.message,
      Array.isArray(error.details) ? (error.details as IxErrorDetail[]) : [],
      typeof error.job_id === 'string' ? error.job_id : null,
      error.job !== null && typeof error.job === 'object' ? (error.job as Job) : null,
    );
  }
  // Not ix's error shape: a proxy or load balancer answered.
  return new IxApiError(status, 'http_error', text.slice(0, 200) || `HTTP ${status}`);
}
