/** The endpoints. Handlers hold no state: any number of API processes can serve one database. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Job, Tombstone } from '../contracts/index.js';
import type { Metrics } from '../metrics/index.js';
import {
  IdempotencyConflictError,
  JobGoneError,
  jobCancelEnding,
  jobGet,
  jobGetByCorrelation,
  jobSearch,
  tombstoneGet,
  tombstoneGetByCorrelation,
  unlessFinished,
  withClientWithin,
} from '../store/index.js';
import type { SubmitService } from '../submit/index.js';
import { type JobWatcher, waitForEnd } from '../watch/index.js';
import { type Authenticator, authenticateRequests, type Caller, mayActFor } from './auth.js';
import { ApiError, invalidField } from './errors.js';
import type { SubmitLimits } from './limits.js';
import { addLogContext } from './logging.js';
import {
  CorrelationQuerySchema,
  errorResponses,
  JobPageSchema,
  JobParamsSchema,
  JobSchema,
  JobsQuerySchema,
  jsonResponse,
  SubmitBodySchema,
  WaitQuerySchema,
} from './schemas.js';
import { streamJobEvents, waitedJob } from './watching.js';

export interface RouteDeps {
  pool: pg.Pool;
  config: Config;
  authenticator: Authenticator;
  submissions: SubmitService;
  /** Feeds every answer that waits for a job to change. */
  watcher: JobWatcher;
  /** Counts the jobs a cancel ends; null: none kept. */
  metrics: Metrics | null;
  /** Each client's submit rate and max_pending; absent: none enforced. */
  limits?: SubmitLimits;
}

/** A client key used for another client: refused, naming both. */
function notYourClient(caller: Caller, doing: string, clientId: string): ApiError {
  const owner = caller.kind === 'client' ? caller.clientId : '';
  return new ApiError(
    403,
    'forbidden',
    `this API key belongs to client "${owner}" and cannot ${doing} "${clientId}"`,
  );
}

function logJob(request: FastifyRequest, job: Job): void {
  addLogContext(request, { job_id: job.job_id, ix_id: job.ix_id });
}

function gone(request: FastifyRequest, tombstone: Tombstone): JobGoneError {
  addLogContext(request, { job_id: tombstone.job_id, ix_id: tombstone.ix_id });
  return new JobGoneError(tombstone);
}

export function jobNotFound(what: string): ApiError {
  return new ApiError(404, 'not_found', `no job ${what}`);
}

/**
 * Cancels a job. A running one's worker is told, aborts it within a second, and records the
 * outcome; the answer waits for it for half the deadline (the rest is for its statements), so it
 * reports what was committed: `cancelled` (200), or `done`/`error` when that outcome won (409),
 * or, still running, the request taken (202).
 */
export async function cancelWithin(
  pool: pg.Pool,
  watcher: JobWatcher,
  metrics: Metrics | null,
  deadlineMs: number,
  jobId: string,
): Promise<{ status: 200 | 202; job: Job }> {
  const started = Date.now();
  const left = () => Math.max(1, started + deadlineMs - Date.now());
  const asked = await withClientWithin(pool, left(), (db) => jobCancelEnding(db, jobId));
  if (!asked) throw jobNotFound(jobId);
  // A pending job ends here; a running one is counted by its worker when it records the outcome.
  if (asked.ended) metrics?.jobFinished(asked.job.client_id, asked.job.created_at, 'cancelled');
  const job =
    asked.job.status === 'running' ? await waitForEnd(watcher, asked.job, deadlineMs / 2) : asked.job;
  unlessFinished(job);
  return { status: job.status === 'running' ? 202 : 200, job };
}

export async function registerJobRoutes(parent: FastifyInstance, deps: RouteDeps): Promise<void> {
  const { pool, config, authenticator, submissions, watcher, metrics, limits } = deps;
  const { maxWaitSeconds, eventsHeartbeatSeconds } = config.api;

  // Every statement, the wait for a connection included, answers within the deadline (503 past it).
  const deadlineMs = config.api.deadlineSeconds * 1000;

  /** The job once finished, or, when `?wait` runs out, read again as it stands (see waitedJob). */
  const waited = (reply: FastifyReply, job: Job, wait: number | undefined) =>
    waitedJob(watcher, reply, job, wait, maxWaitSeconds, () =>
      withClientWithin(pool, deadlineMs, (db) => jobGet(db, job.job_id)),
    );

  /** Cancels a job the caller may see (see cancelWithin). */
  const cancel = (jobId: string) => cancelWithin(pool, watcher, metrics, deadlineMs, jobId);

  /**
   * The job by its id, if the caller may see it; another client's answers like a missing one. A
   * pruned one throws JobGoneError (410); its tombstone is read only when no job row is found.
   */
  async function ownJob(request: FastifyRequest, jobId: string): Promise<Job> {
    const [job, tombstone] = await withClientWithin(pool, deadlineMs, async (db) => {
      const found = await jobGet(db, jobId);
      return [found, found ? null : await tombstoneGet(db, jobId)] as const;
    });
    // Another client's job answers exactly like a missing one, so ids do not leak.
    if (tombstone && mayActFor(request.caller, tombstone.client_id)) throw gone(request, tombstone);
    if (!job || !mayActFor(request.caller, job.client_id)) throw jobNotFound(jobId);
    logJob(request, job);
    return job;
  }

  /** The job by the client's own request id, if the caller may act for that client. */
  async function ownJobByCorrelation(
    request: FastifyRequest,
    clientId: string,
    requestId: string,
  ): Promise<Job> {
    const [job, tombstone] = mayActFor(request.caller, clientId)
      ? await withClientWithin(pool, deadlineMs, async (db) => {
          const found = await jobGetByCorrelation(db, clientId, requestId);
          return [found, found ? null : await tombstoneGetByCorrelation(db, clientId, requestId)] as const;
        })
      : [null, null];
    if (tombstone) throw gone(request, tombstone);
    if (!job) throw jobNotFound(`with client_id ${clientId} and request_id ${requestId}`);
    logJob(request, job);
    return job;
  }

  await parent.register(async (scope) => {
    const app = scope.withTypeProvider<ZodTypeProvider>();
    authenticateRequests(scope, authenticator);
    // As at start-up: a key added to the table later is accepted, only not documented till restart.
    const withKeys = authenticator.keyed();
    const security = withKeys ? [{ bearer: [] }] : [];
    // Only keys can be missing, unknown, or another client's.
    const unauthorized = withKeys ? ([401] as const) : [];
    const forbidden = withKeys ? ([403] as const) : [];

    app.post(
      '/jobs',
      {
        schema: {
          operationId: 'submitJob',
          summary: 'Submit a job (idempotent on request.ix_client_id + request.request_id)',
          security,
          body: SubmitBodySchema,
          querystring: WaitQuerySchema,
          response: {
            200: jsonResponse(
              'An identical replay: the job first submitted under this ix_client_id and request_id, as it stands (finished, with ?wait, if it finished within the wait); Location: /jobs/{job_id}',
              JobSchema,
            ),
            201: jsonResponse(
              'The new job (finished, with ?wait, if it finished within the wait); Location: /jobs/{job_id}',
              JobSchema,
            ),
            ...errorResponses(400, ...unauthorized, ...forbidden, 405, 409, 410, 413, 415, 429, 503),
          },
        },
      },
      async (request, reply) => {
        const ix = request.body.request;
        const { caller } = request;
        if (!mayActFor(caller, ix.ix_client_id)) throw notYourClient(caller, 'submit as', ix.ix_client_id);
        // Before the insert batcher: a refused submit costs it nothing.
        await limits?.admit(ix.ix_client_id, ix.request_id);
        const { job, created } = await submissions.submit(request.body).catch((error: unknown) => {
          if (error instanceof IdempotencyConflictError || error instanceof JobGoneError)
            addLogContext(request, { job_id: error.jobId });
          throw error;
        });
        logJob(request, job);
        const answer = await waited(reply, job, request.query.wait);
        return reply
          .code(created ? 201 : 200)
          .header('location', `/jobs/${job.job_id}`)
          .send(answer);
      },
    );

    app.get(
      '/jobs/:job_id',
      {
        schema: {
          operationId: 'getJob',
          summary: 'A job by its id; with ?wait, once it has finished (a long-poll)',
          security,
          params: JobParamsSchema,
          querystring: WaitQuerySchema,
          response: {
            200: jsonResponse(
              'The job (with ?wait: finished, or as it stands when the wait ran out)',
              JobSchema,
            ),
            ...errorResponses(400, ...unauthorized, 404, 405, 410, 503),
          },
        },
      },
      async (request, reply) => {
        const job = await ownJob(request, request.params.job_id);
        return waited(reply, job, request.query.wait);
      },
    );

    app.get(
      '/jobs/:job_id/events',
      {
        schema: {
          operationId: 'streamJobEvents',
          summary: 'The job’s changes as server-sent events, until it has finished',
          description:
            'Each event is the whole Job as it stands after a change; its `event` is the new status, or `progress` for a progress report within a run, and its `id` grows with every change. The stream starts with the job as it stands and closes after the final event (done, error or cancelled). Reconnect with `Last-Event-ID` to resume: only a state newer than that one is sent, never one twice. A comment line every IX_EVENTS_HEARTBEAT_SECONDS keeps proxies from closing it.',
          security,
          params: JobParamsSchema,
          response: {
            200: {
              description: 'A text/event-stream of the job’s events',
              content: { 'text/event-stream': { schema: z.string() } },
            },
            ...errorResponses(400, ...unauthorized, 404, 405, 410, 503),
          },
        },
      },
      async (request, reply) => {
        const job = await ownJob(request, request.params.job_id);
        streamJobEvents(watcher, request, reply, job, eventsHeartbeatSeconds);
      },
    );

    const cancelResponses = {
      200: jsonResponse('The job, cancelled (now, or by an earlier request)', JobSchema),
      202: jsonResponse(
        'The job, still running: its worker was asked to abort it and will record it cancelled, unless it ends first',
        JobSchema,
      ),
      ...errorResponses(400, ...unauthorized, 404, 405, 409, 410, 503),
    };

    app.post(
      '/jobs/:job_id/cancel',
      {
        schema: {
          operationId: 'cancelJob',
          summary: 'Cancel a job by its id: a pending one at once, a running one through its worker',
          security,
          params: JobParamsSchema,
          response: cancelResponses,
        },
      },
      async (request, reply) => {
        const found = await ownJob(request, request.params.job_id);
        const { status, job } = await cancel(found.job_id);
        return reply.code(status).send(job);
      },
    );

    app.post(
      '/jobs/cancel',
      {
        schema: {
          operationId: 'cancelJobByCorrelation',
          summary: 'Cancel a job by its correlation: the client id and the client’s own request id',
          security,
          querystring: CorrelationQuerySchema,
          response: cancelResponses,
        },
      },
      async (request, reply) => {
        const { client_id: clientId, request_id: requestId } = request.query;
        const found = await ownJobByCorrelation(request, clientId, requestId);
        const { status, job } = await cancel(found.job_id);
        return reply.code(status).send(job);
      },
    );

    app.get(
      '/jobs',
      {
        schema: {
          operationId: 'findJobs',
          summary:
            'Your jobs, newest first, a page at a time; or with client_id and request_id, the one job submitted under them',
          security,
          querystring: JobsQuerySchema,
          response: {
            200: jsonResponse(
              'With request_id: the job submitted under this client_id and request_id (with ?wait: once finished, or as it stands when the wait ran out). Without: a page of the jobs of client_id (a client key: its own client), newest first',
              z.union([JobSchema, JobPageSchema]),
            ),
            ...errorResponses(400, ...unauthorized, ...forbidden, 404, 405, 410, 503),
          },
        },
      },
      async (request, reply) => {
        const { client_id: clientId, request_id: requestId, status, cursor, limit, wait } = request.query;
        const { caller } = request;
        if (requestId !== undefined) {
          if (clientId === undefined)
            throw invalidField('querystring', '$.client_id', 'is required with request_id');
          const job = await ownJobByCorrelation(request, clientId, requestId);
          return waited(reply, job, wait);
        }
        if (clientId !== undefined && !mayActFor(caller, clientId))
          throw notYourClient(caller, 'list', clientId);
        const client = caller.kind === 'client' ? caller.clientId : (clientId ?? null);
        const page = await withClientWithin(pool, deadlineMs, (db) =>
          jobSearch(db, { clientId: client, status: status ?? null, cursor: cursor ?? null, limit }),
        );
        return { jobs: page.jobs, next_cursor: page.next };
      },
    );
  });
}
