/** /metrics after a known workload: the counters equal the workload, the gauges the database. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, metricsFor } from '../../src/api/index.js';
import { loadConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics/index.js';
import { Sweeper, Worker } from '../../src/worker/index.js';
import { JSON_HEADERS } from '../support/api.js';
import { makeDeliverer } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { claimPending, finishedJobs, insertPending } from '../support/jobs.js';
import { sample } from '../support/metrics.js';
import { useReceiver } from '../support/receiver.js';
import { silentLogger, workerConfig } from '../support/worker.js';

const db = useTestDatabase();
const receiver = useReceiver();
const ADMIN_KEY = 'operator-key-0123456789abcdef';
const ENV = { IX_API_KEYS: 'acme=client-key-0123456789abcdef', IX_ADMIN_KEYS: `ops=${ADMIN_KEY}` };

describe('/metrics', () => {
  let app: FastifyInstance;
  let metrics: Metrics;

  beforeAll(async () => {
    const config = loadConfig(ENV);
    metrics = metricsFor(db.pool, config);
    app = await buildApi({ pool: db.pool, connectionString: db.url, config, logger: silentLogger, metrics });
  });
  afterAll(async () => {
    await app?.close();
  });

  const scrape = async (authorization = `Bearer ${ADMIN_KEY}`) =>
    app.inject({ method: 'GET', url: '/metrics', headers: { authorization } });

  it('counts a known workload: submitted, finished by outcome, runs by outcome, retries and rescues', async () => {
    const submit = (input: unknown) =>
      app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { ...JSON_HEADERS, authorization: 'Bearer client-key-0123456789abcdef' },
        payload: JSON.stringify({ request: makeRequest({ input: input as never }), max_attempts: 2 }),
      });
    // 4 succeed, 2 fail for good, 1 fails retryably then succeeds; one replay is not a submission.
    const bodies = ['ok', 'ok', 'ok', 'ok', 'fail', 'fail', 'flaky'];
    for (const input of bodies) expect((await submit(input)).statusCode).toBe(201);
    const replay = makeRequest({ input: 'ok' as never });
    for (let i = 0; i < 2; i++)
      await app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { ...JSON_HEADERS, authorization: 'Bearer client-key-0123456789abcdef' },
        payload: JSON.stringify({ request: replay }),
      });
    const seen = new Set<string>();
    const worker = new Worker({
      pool: db.pool,
      connectionString: db.url,
      config: workerConfig({ retryBaseSeconds: 0.001 as number, retryMaxSeconds: 1 }),
      pipeline: async (request, ctx) => {
        if (request.input === 'fail') return { error: 'permanent' };
        if (request.input === 'flaky' && !seen.has(ctx.job_id)) {
          seen.add(ctx.job_id);
          return { error: 'busy', retryable: true, retryAfterSeconds: 0 };
        }
        return { result: request.input };
      },
      logger: silentLogger,
      metrics,
    });
    while ((await worker.runOnce()) > 0 || (await pendingLeft()) > 0)
      await new Promise((r) => setTimeout(r, 5));

    // A job rescued from a dead worker (one that never records its outcome).
    await insertPending(db.pool, makeRequest(), null);
    await claimPending(db.pool, 1, '00000000-0000-7000-8000-000000000001');
    const sweeper = new Sweeper(db.pool, workerConfig(), silentLogger, () => true, metrics);
    await sweeper.runOnce(new Date(Date.now() + 3_600_000));

    const response = await scrape();
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    const text = response.body;
    const counted = [
      'ix_jobs_submitted_total',
      'ix_jobs_finished_total{outcome="done"}',
      'ix_jobs_finished_total{outcome="error"}',
      'ix_pipeline_runs_total{outcome="done"}',
      'ix_pipeline_runs_total{outcome="error"}',
      'ix_pipeline_runs_total{outcome="retry"}',
      'ix_rescues_total',
      'ix_queue_wait_seconds_count',
      'ix_job_end_to_end_seconds_count{outcome="done"}',
      'ix_pipeline_run_seconds_count{outcome="retry"}',
    ];
    expect(counted.map((series) => sample(text, series))).toEqual([8, 6, 2, 6, 2, 1, 1, 9, 6, 1]);
    // The gauges: the rescued job waits in the queue; nothing runs.
    expect(sample(text, 'ix_jobs_pending')).toBe(1);
    expect(sample(text, 'ix_jobs_running')).toBe(0);
    expect(sample(text, 'ix_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(text).toContain('ix_process_cpu_user_seconds_total');
    // No client label unless asked for.
    expect(text).not.toContain('client="acme"');
  });

  it('counts a job a client cancels while it is pending as finished cancelled, once', async () => {
    const finishedCancelled = async () =>
      sample((await scrape()).body, 'ix_jobs_finished_total{outcome="cancelled"}');
    const before = await finishedCancelled();
    const { job } = await insertPending(db.pool, makeRequest({ ix_client_id: 'acme' }), null);
    const authorization = 'Bearer client-key-0123456789abcdef';
    for (let i = 0; i < 2; i++) {
      const cancelled = await app.inject({
        method: 'POST',
        url: `/jobs/${job.job_id}/cancel`,
        headers: { authorization },
      });
      expect(cancelled.statusCode).toBe(200);
    }
    expect(await finishedCancelled()).toBe(before + 1);
  });

  async function pendingLeft(): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_job_queue');
    return rows[0]!.n;
  }

  it('counts callback attempts by result, and times each delivery from the job’s end', async () => {
    await finishedJobs(db.pool, receiver.current.url(), ['done', 'error', 'done']);
    // The first request fails (retried later), the others are delivered; a 400 would fail for good.
    receiver.current.respond = (_request, n) => ({ status: n === 1 ? 503 : n === 2 ? 400 : 204 });
    const counted = metricsFor(db.pool, loadConfig({}));
    const deliverer = makeDeliverer({ pool: db.pool, options: { metrics: counted, batchSize: 1 } });
    for (let i = 0; i < 3; i++) await deliverer.runOnce();
    const text = await counted.text();
    const results = ['delivered', 'retry', 'failed'].map((r) =>
      sample(text, `ix_callback_attempts_total{result="${r}"}`),
    );
    expect(results).toEqual([1, 1, 1]);
    expect(sample(text, 'ix_callback_delivery_seconds_count')).toBe(1);
  });

  it('takes an operator key: a client key is refused, no key is unauthorized', async () => {
    expect((await scrape('Bearer client-key-0123456789abcdef')).statusCode).toBe(403);
    expect((await scrape('')).statusCode).toBe(401);
  });

  it('reads the gauges once a second at most, whatever the scrapes', async () => {
    let now = 1_000_000;
    const cached = new Metrics({
      db: db.pool,
      heartbeatTimeoutSeconds: 30,
      clientLabels: false,
      now: () => now,
    });
    const first = cached.liveCounts();
    expect(cached.liveCounts()).toBe(first);
    now += 999;
    expect(cached.liveCounts()).toBe(first);
    now += 1;
    expect(cached.liveCounts()).not.toBe(first);
    await first;
  });

  it('labels by client only when asked to (IX_METRICS_CLIENT_LABELS)', async () => {
    const labelled = metricsFor(db.pool, loadConfig({ IX_METRICS_CLIENT_LABELS: 'true' }));
    labelled.jobSubmitted('acme');
    labelled.jobFinished('acme', new Date().toISOString(), 'done');
    const text = await labelled.text();
    expect(sample(text, 'ix_jobs_submitted_total{client="acme"}')).toBe(1);
    expect(sample(text, 'ix_jobs_finished_total{outcome="done",client="acme"}')).toBe(1);
  });
});
