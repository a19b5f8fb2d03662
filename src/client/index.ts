/**
 * A typed client of the ix API (`import { IxClient } from 'ix/client'`), on the global `fetch`.
 * Of the server's code it imports only types, so using it loads none of it.
 */
import type { Job, JobStatus, RequestIX } from '../contracts/index.js';
import type { AdminJob, JobPage, Overview } from '../contracts/operators.js';
import { IxApiError, IxWaitTimeoutError, toApiError } from './errors.js';
import { type JobEvent, serverSentEvents } from './events.js';

export type { Job, JobStatus, RequestIX, ResponseIX, Run, RunOutcome } from '../contracts/index.js';
export type { AdminJob, JobPage, JobSummary, OperatorAction, Overview } from '../contracts/operators.js';
export { IxApiError, type IxErrorDetail, IxWaitTimeoutError } from './errors.js';
export type { JobEvent } from './events.js';

export interface IxClientOptions {
  /** e.g. `http://127.0.0.1:8080` */
  baseUrl: string;
  /** A key of the server's `IX_API_KEYS`; omit for a server with open access. */
  apiKey?: string;
  /** Per HTTP call; default 30 s. */
  timeoutMs?: number;
  /** Injected for tests or custom agents; default the global `fetch`. */
  fetch?: typeof fetch;
}

export interface SubmitResult {
  job: Job;
  /** false when this `(ix_client_id, request_id)` was submitted before: `job` is that first job. */
  created: boolean;
}

/** When, and how often, a submitted job may run. */
export interface SubmitOptions {
  /** Not before this time (RFC 3339, or a Date); not with `delaySeconds`. */
  runAfter?: string | Date;
  /** Not before this many seconds from now; not with `runAfter`. */
  delaySeconds?: number;
  /** Runs it may take, retries and rescues included (at most the server's IX_MAX_ATTEMPTS_CAP). */
  maxAttempts?: number;
  /** How urgent among your own jobs, 0 (default) to 9, higher first. */
  priority?: number;
}

export interface WaitOptions {
  /** Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface EventsOptions {
  signal?: AbortSignal;
  /** Resume after this event (its `id`): only newer states are sent. */
  lastEventId?: string;
}

const TERMINAL: ReadonlySet<Job['status']> = new Set(['done', 'error', 'cancelled']);
/** The longest one long-poll asks for; the server cuts it to its IX_MAX_WAIT_SECONDS anyway. */
const LONG_POLL_SECONDS = 60;
/** A dropped event stream is resumed this many times in a row at most, a second apart. */
const STREAM_RESUMES = 5;

export interface ListOptions {
  /** Open access or an operator key: whose jobs (default: every client's). */
  clientId?: string;
  status?: JobStatus;
  cursor?: string;
  /** 1 to 100; default 50. */
  limit?: number;
}

export interface SearchOptions extends ListOptions {
  /** The job submitted under this request id. */
  requestId?: string;
  /** Jobs whose ix_id starts with this (1 to 16 lowercase hex characters). */
  ixIdPrefix?: string;
  /** Submitted at or after this. */
  from?: Date | string;
  /** Submitted before this. */
  to?: Date | string;
}

/** `?a=1&b=2` of the parameters given; empty when none is. */
function queryOf(parameters: Record<string, string | number | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters))
    if (value !== undefined) query.set(name, String(value));
  const text = query.toString();
  return text === '' ? '' : `?${text}`;
}

export class IxClient {
  readonly baseUrl: string;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: IxClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.headers = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  }

  /**
   * Submits idempotently: resubmitting the same request returns the first job; the same request
   * id with a different input or callback_url throws IxApiError 409 `idempotency_conflict`.
   */
  async submit(
    request: RequestIX,
    callbackUrl: string | null = null,
    options: SubmitOptions = {},
  ): Promise<SubmitResult> {
    return this.submitWaiting(request, callbackUrl, options, 0);
  }

  /**
   * Submits (idempotently, as `submit`) and resolves with the job once it has finished: the
   * submit itself waits on the server, then `waitFor` goes on. Throws IxWaitTimeoutError past
   * `timeoutMs`.
   */
  async submitAndWait(
    request: RequestIX,
    callbackUrl: string | null = null,
    options: SubmitOptions & WaitOptions = {},
  ): Promise<Job> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const started = Date.now();
    const { job } = await this.submitWaiting(request, callbackUrl, options, timeoutMs);
    if (TERMINAL.has(job.status)) return job;
    const left = Math.max(0, timeoutMs - (Date.now() - started));
    return this.waitFor(job.job_id, {
      timeoutMs: left,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  private async submitWaiting(
    request: RequestIX,
    callbackUrl: string | null,
    options: SubmitOptions,
    waitMs: number,
  ): Promise<SubmitResult> {
    const { runAfter, delaySeconds, maxAttempts, priority } = options;
    const wait = waitSeconds(waitMs);
    const { status, body } = await this.call(
      'POST',
      wait > 0 ? `/jobs?wait=${wait}` : '/jobs',
      {
        request,
        callback_url: callbackUrl,
        ...(runAfter === undefined
          ? {}
          : { run_after: runAfter instanceof Date ? runAfter.toISOString() : runAfter }),
        ...(delaySeconds === undefined ? {} : { delay_seconds: delaySeconds }),
        ...(maxAttempts === undefined ? {} : { max_attempts: maxAttempts }),
        ...(priority === undefined ? {} : { priority }),
      },
      wait,
    );
    return { job: body as Job, created: status === 201 };
  }

  async get(jobId: string): Promise<Job> {
    return (await this.call('GET', `/jobs/${encodeURIComponent(jobId)}`)).body as Job;
  }

  async getByCorrelation(clientId: string, requestId: string): Promise<Job> {
    const query = new URLSearchParams({ client_id: clientId, request_id: requestId });
    return (await this.call('GET', `/jobs?${query}`)).body as Job;
  }

  /**
   * Cancels a job: a pending one ends `cancelled` at once; a running one's worker aborts it, and
   * the job comes back `cancelled`, or still `running` if its worker has not recorded that within
   * the server's answer time (waitFor it). A job that had ended `done` or `error` throws
   * IxApiError 409 `job_finished`, with that job in `job`. Cancelling twice is harmless.
   */
  async cancel(jobId: string): Promise<Job> {
    return (await this.call('POST', `/jobs/${encodeURIComponent(jobId)}/cancel`)).body as Job;
  }

  /** `cancel`, of the job submitted under this client id and request id. */
  async cancelByCorrelation(clientId: string, requestId: string): Promise<Job> {
    const query = new URLSearchParams({ client_id: clientId, request_id: requestId });
    return (await this.call('POST', `/jobs/cancel?${query}`)).body as Job;
  }

  /**
   * A page of the caller's jobs, newest first: a client key's own; with open access or an
   * operator key, `clientId`'s, or everyone's. Pass the page's `next_cursor` as `cursor` for the next.
   */
  async list(options: ListOptions = {}): Promise<JobPage> {
    const query = queryOf({
      client_id: options.clientId,
      status: options.status,
      cursor: options.cursor,
      limit: options.limit,
    });
    return (await this.call('GET', `/jobs${query}`)).body as JobPage;
  }

  /** Operator (a key of IX_ADMIN_KEYS): every client's jobs, by the filters given, newest first. */
  async searchJobs(options: SearchOptions = {}): Promise<JobPage> {
    const at = (time: Date | string | undefined) => (time instanceof Date ? time.toISOString() : time);
    const query = queryOf({
      status: options.status,
      client_id: options.clientId,
      request_id: options.requestId,
      ix_id: options.ixIdPrefix,
      from: at(options.from),
      to: at(options.to),
      cursor: options.cursor,
      limit: options.limit,
    });
    return (await this.call('GET', `/admin/jobs${query}`)).body as JobPage;
  }

  /** Operator: any client's job, with what operators did to it. */
  async adminGet(jobId: string): Promise<AdminJob> {
    return (await this.call('GET', `/admin/jobs/${encodeURIComponent(jobId)}`)).body as AdminJob;
  }

  /**
   * Operator: puts a job that ended `error` back to `pending` with a fresh budget of attempts; a
   * job in any other state throws IxApiError 409 `job_not_failed`.
   */
  async retry(jobId: string): Promise<Job> {
    return (await this.call('POST', `/admin/jobs/${encodeURIComponent(jobId)}/retry`)).body as Job;
  }

  /** Operator: `cancel`, of any client's job. */
  async adminCancel(jobId: string): Promise<Job> {
    return (await this.call('POST', `/admin/jobs/${encodeURIComponent(jobId)}/cancel`)).body as Job;
  }

  /** Operator: the dashboard's figures. */
  async overview(): Promise<Overview> {
    return (await this.call('GET', '/admin/overview')).body as Overview;
  }

  /**
   * Resolves once the job is `done`, `error` or `cancelled`, through long-polls: each answers
   * the moment the job finishes. Throws IxWaitTimeoutError past `timeoutMs`.
   */
  async waitFor(jobId: string, options: WaitOptions = {}): Promise<Job> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const wait = waitSeconds(deadline - Date.now());
      const path = `/jobs/${encodeURIComponent(jobId)}${wait > 0 ? `?wait=${wait}` : ''}`;
      const job = (await this.call('GET', path, undefined, wait, options.signal)).body as Job;
      if (TERMINAL.has(job.status)) return job;
      if (Date.now() >= deadline) throw new IxWaitTimeoutError(jobId, job.status, timeoutMs);
    }
  }

  /**
   * The job's events as they happen, ending after the final one (`done`, `error` or
   * `cancelled`): each is the whole job after a change. A dropped connection is resumed from the
   * last event received, so no event is missed or repeated.
   */
  async *events(jobId: string, options: EventsOptions = {}): AsyncGenerator<JobEvent> {
    let lastEventId = options.lastEventId ?? null;
    let resumes = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      let ended = false;
      try {
        const response = await this.fetch(`${this.baseUrl}/jobs/${encodeURIComponent(jobId)}/events`, {
          headers: { ...this.headers, ...(lastEventId === null ? {} : { 'last-event-id': lastEventId }) },
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (!response.ok || response.body === null) {
          const text = await response.text();
          throw toApiError(response.status, parseJson(text), text);
        }
        for await (const event of serverSentEvents(response.body)) {
          resumes = 0;
          lastEventId = event.id;
          yield event;
          if (TERMINAL.has(event.job.status)) ended = true;
        }
        // The server closes the stream after the final event, or at once when it was sent before.
        if (ended || lastEventId !== null) return;
      } catch (error) {
        if (error instanceof IxApiError || options.signal?.aborted || ++resumes > STREAM_RESUMES) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  /** One call; `waitSeconds` the server may hold it for, on top of the per-call timeout. */
  private async call(
    method: string,
    path: string,
    json?: unknown,
    waitSeconds = 0,
    signal?: AbortSignal,
  ): Promise<{ status: number; body: unknown }> {
    const timeout = AbortSignal.timeout(this.timeoutMs + waitSeconds * 1000);
    const response = await this.fetch(`${this.baseUrl}${path}`, {
      method,
      headers: json === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    const text = await response.text();
    const body = parseJson(text);
    if (!response.ok) throw toApiError(response.status, body, text);
    return { status: response.status, body };
  }
}

/** A long-poll's `wait` for the time left, in seconds to the millisecond, at most LONG_POLL_SECONDS. */
function waitSeconds(leftMs: number): number {
  return Math.max(0, Math.min(LONG_POLL_SECONDS, Math.round(leftMs) / 1000));
}

function parseJson(text: string): unknown {
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    return null;
  }
}
