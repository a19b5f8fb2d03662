/**
 * The operator endpoints (`/admin/*`) and `/metrics`: every client's jobs, searched, looked at,
 * retried and cancelled, and the figures the dashboard shows. They take a key of IX_ADMIN_KEYS,
 * or nothing in open access (no keys at all); a client key is refused (403).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/index.js';
import { jobGetWithActions, jobRetry, jobSearch, overviewRead, withClientWithin } from '../store/index.js';
import { type Authenticator, keyed, requireOperator } from './auth.js';
import { addLogContext } from './logging.js';
import { authenticateRequests, cancelWithin, jobNotFound } from './routes.js';
import {
  AdminJobSchema,
  AdminJobsQuerySchema,
  errorResponses,
  JobPageSchema,
  JobParamsSchema,
  JobSchema,
  jsonResponse,
  OverviewSchema,
} from './schemas.js';

export interface AdminDeps {
  pool: pg.Pool;
  config: Config;
  authenticator: Authenticator;
  metrics: Metrics;
}

export async function registerAdminRoutes(parent: FastifyInstance, deps: AdminDeps): Promise<void> {
  const { pool, config, authenticator, metrics } = deps;
  const deadlineMs = config.api.deadlineSeconds * 1000;

  await parent.register(async (scope) => {
    const app = scope.withTypeProvider<ZodTypeProvider>();
    authenticateRequests(scope, authenticator);
    // The operator's name, also in the request's log line.
    const operator = (request: FastifyRequest): string => requireOperator(request.caller);
    app.addHook('preHandler', (request, _reply, done) => {
      try {
        operator(request);
      } catch (error) {
        done(error as Error);
        return;
      }
      done();
    });
    const withKeys = keyed(config);
    const security = withKeys ? [{ bearer: [] }] : [];
    const refused = withKeys ? ([401, 403] as const) : [];

    // Prometheus text, not JSON: left out of the OpenAPI document (README, "Metrics").
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    });

    app.get(
      '/admin/jobs',
      {
        schema: {
          operationId: 'searchJobs',
          summary:
            'Every client’s jobs, by status, client, request_id, ix_id prefix and submission time, newest first',
          security,
          querystring: AdminJobsQuerySchema,
          response: {
            200: jsonResponse('A page of the jobs that match every filter given', JobPageSchema),
            ...errorResponses(400, ...refused, 405, 503),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await withClientWithin(pool, deadlineMs, (db) =>
          jobSearch(db, {
            status: q.status ?? null,
            clientId: q.client_id ?? null,
            requestId: q.request_id ?? null,
            ixIdPrefix: q.ix_id ?? null,
            fromMs: q.from === undefined ? null : Date.parse(q.from),
            toMs: q.to === undefined ? null : Date.parse(q.to),
            cursor: q.cursor ?? null,
            limit: q.limit,
          }),
        );
        return { jobs: page.jobs, next_cursor: page.next };
      },
    );

    app.get(
      '/admin/jobs/:job_id',
      {
        schema: {
          operationId: 'getAdminJob',
          summary: 'Any client’s job, with what operators did to it',
          security,
          params: JobParamsSchema,
          response: {
            200: jsonResponse('The job and the operators’ actions on it', AdminJobSchema),
            ...errorResponses(400, ...refused, 404, 405, 503),
          },
        },
      },
      async (request) => {
        const { job_id: jobId } = request.params;
        const found = await withClientWithin(pool, deadlineMs, (db) => jobGetWithActions(db, jobId));
        if (!found) throw jobNotFound(jobId);
        addLogContext(request, { job_id: found.job.job_id, ix_id: found.job.ix_id });
        return { job: found.job, operator_actions: found.operatorActions };
      },
    );

    app.post(
      '/admin/jobs/:job_id/retry',
      {
        schema: {
          operationId: 'retryJob',
          summary: 'Put a job that ended in error back to pending, with a fresh budget of attempts',
          security,
          params: JobParamsSchema,
          response: {
            200: jsonResponse(
              'The job, pending again; operator_actions (GET /admin/jobs/{job_id}) names who',
              JobSchema,
            ),
            ...errorResponses(400, ...refused, 404, 405, 409, 503),
          },
        },
      },
      async (request) => {
        const { job_id: jobId } = request.params;
        const by = operator(request);
        const job = await withClientWithin(pool, deadlineMs, (db) =>
          jobRetry(db, jobId, by, config.worker.maxAttempts),
        );
        if (!job) throw jobNotFound(jobId);
        addLogContext(request, { job_id: job.job_id, ix_id: job.ix_id });
        request.log.info({ ...request.logContext, operator: by }, 'job retried by an operator');
        return job;
      },
    );

    app.post(
      '/admin/jobs/:job_id/cancel',
      {
        schema: {
          operationId: 'cancelAnyJob',
          summary: 'Cancel any client’s job: a pending one at once, a running one through its worker',
          security,
          params: JobParamsSchema,
          response: {
            200: jsonResponse('The job, cancelled (now, or by an earlier request)', JobSchema),
            202: jsonResponse(
              'The job, still running: its worker was asked to abort it and will record it cancelled, unless it ends first',
              JobSchema,
            ),
            ...errorResponses(400, ...refused, 404, 405, 409, 503),
          },
        },
      },
      async (request, reply) => {
        const by = operator(request);
        const { status, job } = await cancelWithin(pool, deadlineMs, request.params.job_id);
        addLogContext(request, { job_id: job.job_id, ix_id: job.ix_id });
        request.log.info({ ...request.logContext, operator: by }, 'job cancelled by an operator');
        return reply.code(status).send(job);
      },
    );

    app.get(
      '/admin/overview',
      {
        schema: {
          operationId: 'getOverview',
          summary: 'What the dashboard shows: the queue, the last hour, workers, callbacks, clients',
          security,
          response: {
            200: jsonResponse('The figures, as of generated_at', OverviewSchema),
            ...errorResponses(...refused, 405, 503),
          },
        },
      },
      async () =>
        withClientWithin(pool, deadlineMs, (db) => overviewRead(db, config.worker.heartbeatTimeoutSeconds)),
    );
  });
}
