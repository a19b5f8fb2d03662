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
import {
  jobGetWithActions,
  jobRetry,
  jobSearch,
  overviewRead,
  type RecentFigures,
  recentFigures,
  withClientWithin,
} from '../store/index.js';
import type { JobWatcher } from '../watch/index.js';
import { type Authenticator, authenticateRequests, requireOperator } from './auth.js';
import { addLogContext } from './logging.js';
import { cancelWithin, jobNotFound } from './routes.js';
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
  /** Feeds the cancel's wait for a running job's worker. */
  watcher: JobWatcher;
}

/** How long the overview reuses the last hour's figures; past it, they are read again. */
const RECENT_MAX_AGE_MS = 10_000;

/**
 * The overview's last-hour figures, whose read grows with the last hour's jobs (docs/design.md,
 * "Operators"): read at most once per RECENT_MAX_AGE_MS, however many dashboards poll. Past
 * that age the figures in hand are answered while a fresh read runs, unless they are older than
 * three times it: then the answer waits for the read.
 */
export class RecentCache {
  private value: { at: number; figures: RecentFigures } | null = null;
  private reading: Promise<RecentFigures> | null = null;

  constructor(
    private readonly read: () => Promise<RecentFigures>,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<RecentFigures> {
    const age = this.value === null ? Number.POSITIVE_INFINITY : this.now() - this.value.at;
    if (this.value !== null && age < RECENT_MAX_AGE_MS) return Promise.resolve(this.value.figures);
    const reading = this.refresh();
    if (this.value !== null && age < 3 * RECENT_MAX_AGE_MS) {
      // A failed background read is retried by the next request; the figures in hand still stand.
      reading.catch(() => {});
      return Promise.resolve(this.value.figures);
    }
    return reading;
  }

  private refresh(): Promise<RecentFigures> {
    this.reading ??= this.read()
      .then((figures) => {
        this.value = { at: this.now(), figures };
        return figures;
      })
      .finally(() => {
        this.reading = null;
      });
    return this.reading;
  }
}

export async function registerAdminRoutes(parent: FastifyInstance, deps: AdminDeps): Promise<void> {
  const { pool, config, authenticator, metrics, watcher } = deps;
  const deadlineMs = config.api.deadlineSeconds * 1000;
  const recent = new RecentCache(() => withClientWithin(pool, deadlineMs, (db) => recentFigures(db)));

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
    const withKeys = authenticator.keyed();
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
        const { status, job } = await cancelWithin(pool, watcher, metrics, deadlineMs, request.params.job_id);
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
      async () => {
        const figures = await recent.get();
        return withClientWithin(pool, deadlineMs, (db) =>
          overviewRead(db, config.worker.heartbeatTimeoutSeconds, figures),
        );
      },
    );
  });
}
