/**
 * Results without polling, on a real PostgreSQL: long-polls (`?wait`), waiting on submit, and the
 * job event stream, all fed by one watcher's LISTEN connection. Jobs change the way a worker
 * changes them: through the store's statements, then a notification after the commit.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../src/contracts/index.js';
import { jobNotifyChanged, jobProgressMany } from '../../src/store/index.js';
import { JobWatcher } from '../../src/watch/index.js';
import { echoPipeline } from '../../src/worker/index.js';
import { buildTestApi, captureLogs, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest, success } from '../support/factories.js';
import { claimPending, finishJob, insertPending } from '../support/jobs.js';
import { eventually, makeWorker, silentLogger } from '../support/worker.js';

const db = useTestDatabase();
/** So long that only a notification (or a reconnect's catch-up) can answer a waiter in a test. */
const NO_POLL_MS = 600_000;
let watcher: JobWatcher;
let app: FastifyInstance;

beforeAll(async () => {
  watcher = new JobWatcher({
    pool: db.pool,
    connectionString: db.url,
    logger: silentLogger,
    pollIntervalMs: NO_POLL_MS,
  });
  await watcher.start();
  await eventually(async () => watcher.listening, 'notifications are known to arrive');
  app = await buildTestApi(db.pool, {}, captureLogs(), watcher);
});
afterAll(async () => {
  await app?.close();
  await watcher?.close();
});
afterEach(async () => {
  await eventually(async () => watcher.waiters === 0, 'every waiter let go');
});

async function pendingJob(): Promise<Job> {
  return (await insertPending(db.pool, makeRequest(), null)).job;
}

/** Ends a claimed job `done` as a worker does: the fenced completion, then the notification. */
async function finish(job: Job): Promise<number> {
  expect(await finishJob(db.pool, job.job_id, job.attempts, success(job.ix_id))).toBe(true);
  const committed = Date.now();
  await jobNotifyChanged(db.pool, [job.job_id]);
  return committed;
}

const get = (url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url, headers });

describe('long-poll: GET /jobs/{id}?wait', () => {
  it('answers a few ms after the job finishes, not at the end of the wait', async () => {
    const job = await pendingJob();
    await claimPending(db.pool, 1);
    const polled = get(`/jobs/${job.job_id}?wait=30`);
    await eventually(async () => watcher.waiters === 1, 'the long-poll waits');
    const committed = await finish(job);
    const response = await polled;
    const answered = Date.now();
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ job_id: job.job_id, status: 'done' });
    // The poll interval is ten minutes and the wait 30 s: only the notification can be this fast.
    expect(answered - committed).toBeLessThan(500);
  });

  it('answers at once for a finished job, and for no wait at all', async () => {
    const job = await pendingJob();
    await claimPending(db.pool, 1);
    await finish(job);
    const started = Date.now();
    expect((await get(`/jobs/${job.job_id}?wait=30`)).json()).toMatchObject({ status: 'done' });
    const other = await pendingJob();
    expect((await get(`/jobs/${other.job_id}`)).json()).toMatchObject({ status: 'pending' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('a wait that runs out answers the job as it stands, after the wait and not before', async () => {
    const job = await pendingJob();
    const started = Date.now();
    const response = await get(`/jobs/${job.job_id}?wait=1`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ job_id: job.job_id, status: 'pending' });
  });

  it('waits by correlation too, and cuts a longer wait to IX_MAX_WAIT_SECONDS', async () => {
    const capped = await buildTestApi(db.pool, { IX_MAX_WAIT_SECONDS: '1' }, captureLogs(), watcher);
    try {
      const job = await pendingJob();
      const started = Date.now();
      const response = await capped.inject({
        method: 'GET',
        url: `/jobs?client_id=${job.client_id}&request_id=${job.request_id}&wait=3600`,
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(response.json()).toMatchObject({ job_id: job.job_id, status: 'pending' });
    } finally {
      await capped.close();
    }
  });

  it('refuses a wait that is not a number of seconds, with the error shape', async () => {
    const job = await pendingJob();
    const response = await get(`/jobs/${job.job_id}?wait=soon`);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('another client’s job: 404 at once, with no waiting', async () => {
    const keyed = await buildTestApi(
      db.pool,
      { IX_API_KEYS: 'acme=key-acme-0123456789abcdef,other=key-other-0123456789abcdef' },
      captureLogs(),
      watcher,
    );
    try {
      const job = await pendingJob();
      const started = Date.now();
      const response = await keyed.inject({
        method: 'GET',
        url: `/jobs/${job.job_id}?wait=30`,
        headers: { authorization: 'Bearer key-other-0123456789abcdef' },
      });
      expect(response.statusCode).toBe(404);
      const events = await keyed.inject({
        method: 'GET',
        url: `/jobs/${job.job_id}/events`,
        headers: { authorization: 'Bearer key-other-0123456789abcdef' },
      });
      expect(events.statusCode).toBe(404);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await keyed.close();
    }
  });

  it('a client that disconnects frees its waiter at once', async () => {
    const job = await pendingJob();
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = app.server.address() as AddressInfo;
      const sent = httpRequest({ host: '127.0.0.1', port, path: `/jobs/${job.job_id}?wait=30` });
      sent.on('error', () => {});
      sent.end();
      await eventually(async () => watcher.waiters === 1, 'the long-poll waits');
      sent.destroy();
      await eventually(async () => watcher.waiters === 0, 'the waiter is freed', 1_000);
    } finally {
      await app.close();
      app = await buildTestApi(db.pool, {}, captureLogs(), watcher);
    }
  });

  it('the LISTEN connection killed mid-wait: the waiter still gets its result', async () => {
    const job = await pendingJob();
    await claimPending(db.pool, 1);
    const polled = get(`/jobs/${job.job_id}?wait=30`);
    await eventually(async () => watcher.waiters === 1, 'the long-poll waits');
    const { rows } = await db.pool.query<{ killed: boolean }>(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'ix listener'`,
    );
    expect(rows).toEqual([{ killed: true }]);
    // Its notification goes out while no one listens: lost. The reconnect reads what it missed.
    await finish(job);
    const started = Date.now();
    expect((await polled).json()).toMatchObject({ status: 'done' });
    expect(Date.now() - started).toBeLessThan(5_000);
    await eventually(async () => watcher.listening, 'listening again');
  });

  it('1,000 waiters share one database connection, and all get their result', async () => {
    const jobs: Job[] = [];
    for (let i = 0; i < 1_000; i++) jobs.push(await pendingJob());
    const polls = jobs.map((job) => get(`/jobs/${job.job_id}?wait=60`));
    await eventually(async () => watcher.waiters === 1_000, 'a thousand long-polls wait', 20_000);
    const { rows } = await db.pool.query<{ listeners: number; all: number }>(
      `SELECT count(*) FILTER (WHERE application_name = 'ix listener')::int AS listeners, count(*)::int AS all
       FROM pg_stat_activity WHERE datname = current_database()`,
    );
    // The one LISTEN connection, and the pool's (at most its max, shared with this test's queries).
    expect(rows[0]!.listeners).toBe(1);
    expect(rows[0]!.all).toBeLessThanOrEqual(1 + 10);
    const claimed = await claimPending(db.pool, 1_000);
    for (const job of claimed) await finishJob(db.pool, job.job_id, job.attempts, success(job.ix_id));
    await jobNotifyChanged(
      db.pool,
      claimed.map((job) => job.job_id),
    );
    const answers = await Promise.all(polls);
    expect(answers.every((r) => r.statusCode === 200 && r.json<Job>().status === 'done')).toBe(true);
  }, 60_000);
});

describe('waiting on submit: POST /jobs?wait', () => {
  it('a fast pipeline: 201 with the finished job; a slow one: 201 with the job as it stands and its Location', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    const worker = makeWorker(db, async (request, ctx) => {
      if (request.input === 'slow') await slow;
      return echoPipeline(request, ctx);
    });
    await worker.start();
    try {
      const fast = await app.inject({
        method: 'POST',
        url: '/jobs?wait=10',
        headers: JSON_HEADERS,
        payload: JSON.stringify({ request: makeRequest({ input: 'fast' }) }),
      });
      expect(fast.statusCode).toBe(201);
      expect(fast.json()).toMatchObject({ status: 'done', response: { result: 'fast' } });

      const started = Date.now();
      const waited = await app.inject({
        method: 'POST',
        url: '/jobs?wait=1',
        headers: JSON_HEADERS,
        payload: JSON.stringify({ request: makeRequest({ input: 'slow' }) }),
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(waited.statusCode).toBe(201);
      const job = waited.json<Job>();
      expect(job.status).toBe('running');
      expect(waited.headers.location).toBe(`/jobs/${job.job_id}`);
      release();
      // The client goes on waiting where the Location points.
      expect((await get(`/jobs/${job.job_id}?wait=10`)).json()).toMatchObject({ status: 'done' });
    } finally {
      release();
      await worker.stop();
    }
  });
});

/** Parses a text/event-stream body into its events. */
function events(body: string): { id: string; event: string; job: Job }[] {
  return body
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const field = (name: string) =>
        block
          .split('\n')
          .find((line) => line.startsWith(`${name}: `))
          ?.slice(name.length + 2) ?? '';
      return { id: field('id'), event: field('event'), job: JSON.parse(field('data')) as Job };
    });
}

describe('GET /jobs/{id}/events', () => {
  it('streams pending → running → progress → done in order, then closes; a resume repeats nothing', async () => {
    const job = await pendingJob();
    const stream = get(`/jobs/${job.job_id}/events`);
    await eventually(async () => watcher.waiters === 1, 'the stream watches the job');
    expect((await claimPending(db.pool, 1)).map((claimed) => claimed.status)).toEqual(['running']);
    await jobNotifyChanged(db.pool, [job.job_id]);
    const update = { jobId: job.job_id, attempt: 0, claimEpoch: 0 };
    // Two reports, far enough apart to carry distinct times, each told as a worker tells it.
    for (const percent of [40, 80]) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await jobProgressMany(db.pool, [{ ...update, report: { percent, stage: 'reading' } }])).toEqual([
        job.job_id,
      ]);
      await jobNotifyChanged(db.pool, [job.job_id]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await finish(job);
    const response = await stream;
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const seen = events(response.body);
    expect(seen.map((e) => [e.event, e.job.status, e.job.progress?.percent ?? null])).toEqual([
      ['pending', 'pending', null],
      ['running', 'running', null],
      ['progress', 'running', 40],
      ['progress', 'running', 80],
      ['done', 'done', 80],
    ]);
    // Ids grow with every event.
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);

    // A reconnect after the second event sends only what came after it, once.
    const resumed = events((await get(`/jobs/${job.job_id}/events`, { 'last-event-id': seen[1]!.id })).body);
    expect(resumed.map((e) => e.event)).toEqual(['done']);
    expect(resumed[0]!.id).toBe(seen[4]!.id);
    // After the final event there is nothing left to send: the stream closes at once.
    expect(events((await get(`/jobs/${job.job_id}/events`, { 'last-event-id': seen[4]!.id })).body)).toEqual(
      [],
    );
  });

  it('sends heartbeat comments while nothing changes', async () => {
    const beating = await buildTestApi(db.pool, { IX_EVENTS_HEARTBEAT_SECONDS: '1' }, captureLogs(), watcher);
    try {
      const job = await pendingJob();
      const stream = beating.inject({ method: 'GET', url: `/jobs/${job.job_id}/events` });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await claimPending(db.pool, 1);
      await finish(job);
      const body = (await stream).body;
      expect(body).toContain(': heartbeat\n\n');
      expect(events(body).map((e) => e.event)).toEqual(['pending', 'done']);
    } finally {
      await beating.close();
    }
  });

  it('a real worker’s progress reaches the stream', async () => {
    const worker = makeWorker(db, async (request, ctx) => {
      ctx.progress({ percent: 50, stage: 'halfway', message: 'page 5 of 10' });
      // Past the recorder's one-second interval, so the report is written while the run goes on.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      return { result: request.input };
    });
    const job = await pendingJob();
    const stream = get(`/jobs/${job.job_id}/events`);
    await worker.start();
    try {
      const seen = events((await stream).body);
      expect(seen.map((e) => e.event)).toEqual(['pending', 'running', 'progress', 'done']);
      expect(seen[2]!.job.progress).toMatchObject({ percent: 50, stage: 'halfway', message: 'page 5 of 10' });
      expect((await get(`/jobs/${job.job_id}`)).json<Job>().progress).toMatchObject({ percent: 50 });
    } finally {
      await worker.stop();
    }
  });
});

describe('without notifications', () => {
  it('one shared poll serves every waiter, and a log line says so', async () => {
    // LISTENing on another database than the one that changes: no notification ever arrives,
    // as behind a transaction pooler.
    const elsewhere = new URL(db.url);
    elsewhere.pathname = '/postgres';
    const logs = captureLogs();
    const deaf = new JobWatcher({
      pool: db.pool,
      connectionString: elsewhere.toString(),
      logger: logs.logger,
      pollIntervalMs: 200,
    });
    await deaf.start();
    try {
      await eventually(
        async () => logs.text().includes('job change notifications do not arrive'),
        'the log line',
        5_000,
      );
      expect(deaf.listening).toBe(false);
      const polling = await buildTestApi(db.pool, {}, captureLogs(), deaf);
      try {
        const jobs = [await pendingJob(), await pendingJob()];
        const polls = jobs.map((job) =>
          polling.inject({ method: 'GET', url: `/jobs/${job.job_id}?wait=30` }),
        );
        await eventually(async () => deaf.waiters === 2, 'both wait');
        const claimed = await claimPending(db.pool, 2);
        for (const job of claimed) await finishJob(db.pool, job.job_id, job.attempts, success(job.ix_id));
        const started = Date.now();
        const answers = await Promise.all(polls);
        expect(answers.map((r) => r.json<Job>().status)).toEqual(['done', 'done']);
        expect(Date.now() - started).toBeLessThan(2_000);
      } finally {
        await polling.close();
      }
    } finally {
      await deaf.close();
    }
  });
});
