/** The operator endpoints and a client's listing, on a real database: who may call what, and what each finds. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Job, JobSchema } from '../../src/contracts/index.js';
import { AdminJobSchema, JobPageSchema, OverviewSchema } from '../../src/contracts/operators.js';
import { jobSearchQuery } from '../../src/store/admin.js';
import { jobCompleteMany } from '../../src/store/index.js';
import { buildTestApi } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { failure, makeRequest, success } from '../support/factories.js';
import { claimPending, finishJob, insertPending } from '../support/jobs.js';

const db = useTestDatabase();
const ACME_KEY = 'acme-key-0123456789abcdef';
const GLOBEX_KEY = 'globex-key-0123456789abcdef';
const OPS_KEY = 'ops-key-0123456789abcdef';
const ENV = { IX_API_KEYS: `acme=${ACME_KEY},globex=${GLOBEX_KEY}`, IX_ADMIN_KEYS: `alice=${OPS_KEY}` };
let app: FastifyInstance;
let open: FastifyInstance;
let clientsOnly: FastifyInstance;

beforeAll(async () => {
  app = await buildTestApi(db.pool, ENV);
  open = await buildTestApi(db.pool);
  clientsOnly = await buildTestApi(db.pool, { IX_API_KEYS: ENV.IX_API_KEYS });
});
afterAll(async () => {
  await Promise.all([app?.close(), open?.close(), clientsOnly?.close()]);
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });

function get(url: string, key: string | null = OPS_KEY, target = app) {
  return target.inject({ method: 'GET', url, headers: key ? as(key) : {} });
}

function post(url: string, key: string | null = OPS_KEY, target = app) {
  return target.inject({ method: 'POST', url, headers: key ? as(key) : {} });
}

/** A job of `client` taken to `status` through the store, as a worker would. */
async function jobIn(
  status: 'pending' | 'running' | 'done' | 'error',
  client = 'acme',
  requestId: string = `req-${randomUUID()}`,
): Promise<Job> {
  const { job } = await insertPending(
    db.pool,
    makeRequest({ ix_client_id: client, request_id: requestId }),
    null,
  );
  if (status === 'pending') return job;
  // Claims the oldest pending job: callers take each job to its status before making the next.
  const [claimed] = await claimPending(db.pool, 1, null);
  if (claimed?.job_id !== job.job_id) throw new Error('jobIn: another job was pending');
  if (status === 'running') return claimed;
  await finishJob(db.pool, job.job_id, 0, status === 'done' ? success(job.ix_id) : failure(job.ix_id));
  return job;
}

async function search(query: string, key = OPS_KEY) {
  const response = await get(`/admin/jobs?${query}`, key);
  expect(response.statusCode, response.body).toBe(200);
  return JobPageSchema.parse(response.json());
}

const ids = (page: { jobs: { job_id: string }[] }) => page.jobs.map((j) => j.job_id);

describe('GET /admin/jobs', () => {
  let jobs: Record<string, Job>;
  beforeEach(async () => {
    jobs = {
      done: await jobIn('done', 'acme', 'invoice-1'),
      error: await jobIn('error', 'globex', 'invoice-2'),
      running: await jobIn('running', 'acme', 'order_1'),
      pending: await jobIn('pending', 'globex', 'order%1'),
    };
  });

  it('lists every client’s jobs, newest first', async () => {
    const page = await search('');
    expect(ids(page)).toEqual([jobs.pending, jobs.running, jobs.error, jobs.done].map((j) => j!.job_id));
    expect(page.next_cursor).toBeNull();
  });

  it.each(['pending', 'running', 'done', 'error'])('finds the %s jobs', async (status) => {
    expect(ids(await search(`status=${status}`))).toEqual([jobs[status]!.job_id]);
  });

  it('finds by client, request_id (of one client or any) and ix_id prefix', async () => {
    expect(ids(await search('client_id=acme'))).toEqual([jobs.running!.job_id, jobs.done!.job_id]);
    expect(ids(await search('request_id=invoice-2'))).toEqual([jobs.error!.job_id]);
    expect(ids(await search('request_id=order%251'))).toEqual([jobs.pending!.job_id]);
    expect(ids(await search('request_id=order_1&client_id=acme'))).toEqual([jobs.running!.job_id]);
    expect(ids(await search('request_id=order_1&client_id=globex'))).toEqual([]);
    expect(ids(await search('request_id=invoice'))).toEqual([]);
    expect(ids(await search(`ix_id=${jobs.error!.ix_id.slice(0, 12)}`))).toEqual([jobs.error!.job_id]);
    expect(ids(await search('client_id=globex&status=error'))).toEqual([jobs.error!.job_id]);
  });

  it('finds by submission time', async () => {
    const { rows } = await db.pool.query<{ t: Date }>('SELECT now() AS t');
    const future = new Date(rows[0]!.t.getTime() + 3_600_000).toISOString();
    expect(ids(await search(`from=${encodeURIComponent(future)}`))).toEqual([]);
    expect(ids(await search(`to=${encodeURIComponent(future)}`))).toHaveLength(4);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    expect(ids(await search(`from=${encodeURIComponent(hourAgo)}`))).toHaveLength(4);
  });

  it('pages with the cursor', async () => {
    const first = await search('limit=3');
    expect(first.jobs).toHaveLength(3);
    const second = await search(`limit=3&cursor=${first.next_cursor}`);
    expect(ids(second)).toEqual([jobs.done!.job_id]);
    expect(second.next_cursor).toBeNull();
  });

  it('refuses a bad filter with 400 naming it', async () => {
    const response = await get('/admin/jobs?ix_id=XYZ');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details[0].path).toBe('$.ix_id');
    expect((await get('/admin/jobs?limit=101')).statusCode).toBe(400);
    expect((await get('/admin/jobs?status=lost')).statusCode).toBe(400);
  });
});

describe('every search filter is served by an index', () => {
  const filters: [string, Parameters<typeof jobSearchQuery>[0]][] = [
    ['none', { limit: 50 }],
    ['status pending', { status: 'pending', limit: 50 }],
    ['status running', { status: 'running', limit: 50 }],
    ['status error', { status: 'error', limit: 50 }],
    ['client', { clientId: 'acme', limit: 50 }],
    ['request_id', { requestId: 'invoice-1', limit: 50 }],
    ['request_id of a client', { requestId: 'invoice-1', clientId: 'acme', limit: 50 }],
    ['ix_id prefix', { ixIdPrefix: 'ab12', limit: 50 }],
    ['time range', { fromMs: Date.now() - 3_600_000, toMs: Date.now(), limit: 50 }],
    ['cursor', { cursor: randomUUID(), limit: 50 }],
  ];
  it.each(filters)('%s: no sequential scan of ix_jobs even when told to avoid one', async (_name, filter) => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      // With seq scans made prohibitively expensive, any plan left reading ix_jobs whole has no index to use.
      await client.query('SET LOCAL enable_seqscan = off');
      const { text, values } = jobSearchQuery(filter);
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values);
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan).not.toMatch(/Seq Scan on ix_jobs/);
      if (filter.requestId) expect(plan).toContain('ix_jobs_correlation_key');
      if (filter.ixIdPrefix) expect(plan).toContain('ix_jobs_ix_id_key');
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});

describe('GET /admin/overview', () => {
  it('counts what the database holds', async () => {
    await jobIn('done');
    await jobIn('error', 'globex');
    await jobIn('error', 'globex');
    await jobIn('running');
    await jobIn('pending', 'globex');
    await jobIn('pending', 'globex');
    const response = await get('/admin/overview');
    expect(response.statusCode).toBe(200);
    const overview = OverviewSchema.parse(response.json());
    expect(overview.jobs).toMatchObject({ pending: 2, running: 1 });
    expect(overview.jobs.oldest_pending_seconds).toBeGreaterThanOrEqual(0);
    expect(overview.last_hour).toMatchObject({ submitted: 6, done: 1, error: 2, cancelled: 0 });
    expect(overview.last_hour.failure_rate).toBeCloseTo(2 / 3);
    expect(overview.last_hour.queue_wait_p50_ms).toBeGreaterThanOrEqual(0);
    expect(overview.last_hour.by_minute.reduce((n, m) => n + m.done + m.error, 0)).toBe(3);
    expect(overview.clients[0]).toEqual({
      client_id: 'globex',
      pending: 2,
      running: 0,
      submitted_last_hour: 4,
      error_last_hour: 2,
    });
    expect(overview.callbacks).toEqual({ due: 0, failing: 0 });
  });
});

describe('POST /admin/jobs/{id}/retry', () => {
  it('puts a failed job back to pending with a fresh budget, its failed run kept, and who did it', async () => {
    const failed = await jobIn('error');
    const response = await post(`/admin/jobs/${failed.job_id}/retry`);
    expect(response.statusCode, response.body).toBe(200);
    const job = JobSchema.parse(response.json());
    expect(job).toMatchObject({ status: 'pending', attempts: 1, max_attempts: 4, response: null });
    expect(job.last_error).toBe('the model crashed');
    expect(job.attempt_history).toMatchObject([{ attempt: 1, outcome: 'error', error: 'the model crashed' }]);
    const detail = AdminJobSchema.parse((await get(`/admin/jobs/${failed.job_id}`)).json());
    expect(detail.operator_actions).toEqual([{ action: 'retry', by: 'alice', at: expect.any(String) }]);
    // It runs again, as attempt 2, and can succeed.
    const [again] = await claimPending(db.pool, 1, null);
    expect(again?.job_id).toBe(failed.job_id);
    await jobCompleteMany(db.pool, [
      { jobId: failed.job_id, attempt: 1, claimEpoch: 1, response: success(failed.ix_id), status: 'done' },
    ]);
    const done = AdminJobSchema.parse((await get(`/admin/jobs/${failed.job_id}`)).json()).job;
    expect(done.status).toBe('done');
    expect(done.attempt_history.map((r) => [r.attempt, r.outcome])).toEqual([
      [1, 'error'],
      [2, 'done'],
    ]);
  });

  it('refuses a job that has not failed (409) and an unknown one (404)', async () => {
    const finished = await jobIn('done');
    const refused = await post(`/admin/jobs/${finished.job_id}/retry`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toMatchObject({ code: 'job_not_failed', job: { status: 'done' } });
    expect((await post(`/admin/jobs/${randomUUID()}/retry`)).statusCode).toBe(404);
  });
});

describe('POST /admin/jobs/{id}/cancel', () => {
  it('cancels any client’s pending job', async () => {
    const pending = await jobIn('pending', 'globex');
    const response = await post(`/admin/jobs/${pending.job_id}/cancel`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: 'cancelled' });
  });
});

describe('who may call what', () => {
  it('a client key never opens an operator endpoint; a wrong key is unauthorized', async () => {
    const job = await jobIn('error');
    for (const url of ['/admin/jobs', '/admin/overview', `/admin/jobs/${job.job_id}`, '/metrics'])
      expect((await get(url, ACME_KEY)).statusCode, url).toBe(403);
    expect((await post(`/admin/jobs/${job.job_id}/retry`, ACME_KEY)).statusCode).toBe(403);
    expect((await get('/admin/overview', 'wrong-key')).statusCode).toBe(401);
    expect((await get('/admin/overview', null)).statusCode).toBe(401);
  });

  it('with client keys alone, operator endpoints are closed to everyone', async () => {
    expect((await get('/admin/overview', ACME_KEY, clientsOnly)).statusCode).toBe(403);
    expect((await get('/admin/overview', OPS_KEY, clientsOnly)).statusCode).toBe(401);
  });

  it('with no keys at all, they are open (loopback only), like the API', async () => {
    expect((await get('/admin/overview', null, open)).statusCode).toBe(200);
    expect((await get('/metrics', null, open)).statusCode).toBe(200);
  });

  it('an operator sees every client’s jobs on the client endpoints too', async () => {
    const job = await jobIn('pending', 'globex');
    expect((await get(`/jobs/${job.job_id}`, OPS_KEY)).statusCode).toBe(200);
    expect((await get(`/jobs/${job.job_id}`, ACME_KEY)).statusCode).toBe(404);
  });

  it('an admin key equal to a client key is refused at start-up', async () => {
    await expect(
      buildTestApi(db.pool, { IX_API_KEYS: `a=${OPS_KEY}`, IX_ADMIN_KEYS: `b=${OPS_KEY}` }),
    ).rejects.toThrow(/IX_ADMIN_KEYS: the key of "b" is also a key of IX_API_KEYS/);
  });
});

describe('GET /jobs: a client lists its own jobs', () => {
  it('only its own, by status, a page at a time', async () => {
    const mine = [await jobIn('done'), await jobIn('error'), await jobIn('pending')];
    await jobIn('pending', 'globex');
    const all = await get('/jobs', ACME_KEY);
    expect(all.statusCode).toBe(200);
    expect(ids(JobPageSchema.parse(all.json()))).toEqual(mine.map((j) => j.job_id).reverse());
    const failed = JobPageSchema.parse((await get('/jobs?status=error', ACME_KEY)).json());
    expect(ids(failed)).toEqual([mine[1]!.job_id]);
    const first = JobPageSchema.parse((await get('/jobs?limit=2', ACME_KEY)).json());
    const rest = JobPageSchema.parse(
      (await get(`/jobs?limit=2&cursor=${first.next_cursor}`, ACME_KEY)).json(),
    );
    expect([...ids(first), ...ids(rest)]).toEqual(mine.map((j) => j.job_id).reverse());
  });

  it('another client’s listing is forbidden; a request_id needs its client_id', async () => {
    expect((await get('/jobs?client_id=globex', ACME_KEY)).statusCode).toBe(403);
    const missing = await get('/jobs?request_id=r', ACME_KEY);
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toBe('client_id: is required with request_id');
  });

  it('with client_id and request_id it still answers the one job', async () => {
    const job = await jobIn('pending', 'acme', 'the-one');
    const response = await get('/jobs?client_id=acme&request_id=the-one', ACME_KEY);
    expect(JobSchema.parse(response.json()).job_id).toBe(job.job_id);
  });

  it('open access lists everyone’s, or one client’s', async () => {
    await jobIn('pending', 'acme');
    await jobIn('pending', 'globex');
    const all = JobPageSchema.parse((await get('/jobs', null, open)).json());
    expect(all.jobs).toHaveLength(2);
    const one = JobPageSchema.parse((await get('/jobs?client_id=globex', null, open)).json());
    expect(one.jobs.map((j) => j.client_id)).toEqual(['globex']);
  });
});
