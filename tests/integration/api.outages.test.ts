/**
 * Outages answer `503 unavailable` with Retry-After within IX_API_DEADLINE_SECONDS, never a 500
 * or a hang: a stopped PostgreSQL (the test's own), a long lock on ix_jobs, an exhausted pool, a
 * full submit queue. Once the database is back, the same API answers 201/200 again.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/cli/embedded-postgres.js';
import type { Job } from '../../src/contracts/index.js';
import { createPool, migrateUp, withoutPassword } from '../../src/store/index.js';
import { buildTestApi, type CapturedLogs, captureLogs, JSON_HEADERS } from '../support/api.js';
import { killPostmaster } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { eventually } from '../support/worker.js';

const DEADLINE_MS = 1_000;
const DEADLINE_ENV = { IX_API_DEADLINE_SECONDS: String(DEADLINE_MS / 1000) };
/** The deadline, plus what a busy two-core machine may add to answering once it has passed. */
const ANSWERED_WITHIN_MS = DEADLINE_MS + 750;

const db = useTestDatabase();

interface Timed {
  response: LightMyRequestResponse;
  ms: number;
}

async function timed(call: Promise<LightMyRequestResponse>): Promise<Timed> {
  const started = performance.now();
  const response = await call;
  return { response, ms: performance.now() - started };
}

function submit(app: FastifyInstance, request = makeRequest()) {
  return app.inject({ method: 'POST', url: '/jobs', headers: JSON_HEADERS, payload: { request } });
}

/** The three job endpoints, each once, all at the same time. */
function everyJobEndpoint(app: FastifyInstance, job: Job): Promise<Timed[]> {
  return Promise.all([
    timed(submit(app)),
    timed(app.inject({ method: 'GET', url: `/jobs/${job.job_id}` })),
    timed(
      app.inject({
        method: 'GET',
        url: '/jobs',
        query: { client_id: job.client_id, request_id: job.request_id },
      }),
    ),
  ]);
}

function expectUnavailable({ response, ms }: Timed, withinMs = ANSWERED_WITHIN_MS): string {
  expect(response.statusCode).toBe(503);
  const body = response.json() as { error: { code: string; message: string } };
  expect(body).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
  expect(ms).toBeLessThan(withinMs);
  return body.error.message;
}

async function expectServedAgain(app: FastifyInstance, job: Job): Promise<void> {
  const [created, byId, byCorrelation] = await everyJobEndpoint(app, job);
  expect(created?.response.statusCode).toBe(201);
  expect(byId?.response.statusCode).toBe(200);
  expect(byCorrelation?.response.statusCode).toBe(200);
}

/** Backends of this database waiting for a lock: statements ix gave up on must not be among them. */
async function waitingOnLocks(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return rows[0]?.n ?? 0;
}

/** Runs `work` while another connection holds ACCESS EXCLUSIVE on ix_jobs. */
async function withJobsLocked<T>(work: () => Promise<T>): Promise<T> {
  const locker = await db.pool.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE ix_jobs IN ACCESS EXCLUSIVE MODE');
    return await work();
  } finally {
    await locker.query('ROLLBACK');
    locker.release();
  }
}

describe('a stopped PostgreSQL', () => {
  let dataDir: string;
  let server: EmbeddedPostgres;
  let pool: pg.Pool;
  let app: FastifyInstance;
  let logs: CapturedLogs;

  beforeAll(async () => {
    // As root the server runs as `postgres`, which must reach the directory.
    dataDir = mkdtempSync(join(tmpdir(), 'ix-outage-pg-'));
    chmodSync(dataDir, 0o755);
    server = await startEmbeddedPostgres({ dataDir });
    logs = captureLogs();
    pool = createPool(server.url, { max: 2, logger: logs.logger });
    await migrateUp(pool);
    app = await buildTestApi(pool, DEADLINE_ENV, logs);
  });
  afterAll(async () => {
    await app?.close();
    await pool?.end();
    await server?.stop();
    if (dataDir) {
      killPostmaster(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('503 unavailable with Retry-After on every job endpoint, at once; 201/200 again once it is back', async () => {
    const created = await submit(app);
    expect(created.statusCode).toBe(201);
    const job = created.json() as Job;
    // The wake-up NOTIFY after the insert may still hold a connection: wait until all are idle.
    await eventually(async () => pool.totalCount > 0 && pool.idleCount === pool.totalCount, 'idle pool');
    const idle = pool.idleCount;

    await server.stop();
    // Each pooled connection the stop cut is logged once, naming the server, never the password.
    const lost = () => logs.entries().filter((e) => e.msg === 'database connection lost');
    await eventually(async () => lost().length === idle, `${idle} connection losses logged`, 5_000);
    expect(lost().every((e) => e.database === withoutPassword(server.url))).toBe(true);

    for (const answer of await everyJobEndpoint(app, job)) expectUnavailable(answer);
    expect(logs.text()).not.toContain(decodeURIComponent(new URL(server.url).password));

    server = await startEmbeddedPostgres({ dataDir, port: server.port });
    await expectServedAgain(app, job);
  });
});

describe('a database that does not answer', () => {
  it('a long lock on ix_jobs: 503 within the deadline, the abandoned statements cancelled; 201/200 after', async () => {
    const app = await buildTestApi(db.pool, DEADLINE_ENV);
    try {
      const job = (await submit(app)).json() as Job;
      await withJobsLocked(async () => {
        for (const answer of await everyJobEndpoint(app, job)) expectUnavailable(answer);
        // Cancelled on the server, not merely abandoned: nothing of the API still queues for the lock.
        await eventually(
          async () => (await waitingOnLocks(db.pool)) === 0,
          'no statement left waiting',
          5_000,
        );
      });
      await expectServedAgain(app, job);
    } finally {
      await app.close();
    }
  }, 20_000);

  it('an exhausted pool: 503 within the deadline; 201/200 once a connection is free', async () => {
    const pool = createPool(db.url, { max: 2 });
    const app = await buildTestApi(pool, DEADLINE_ENV);
    try {
      const job = (await submit(app)).json() as Job;
      const held = [await pool.connect(), await pool.connect()];
      try {
        for (const answer of await everyJobEndpoint(app, job)) expectUnavailable(answer);
      } finally {
        for (const client of held) client.release();
      }
      await expectServedAgain(app, job);
    } finally {
      await app.close();
      await pool.end();
    }
  }, 20_000);

  it('a full submit queue: the submission over IX_API_MAX_PENDING_SUBMITS is refused at once', async () => {
    const app = await buildTestApi(db.pool, { ...DEADLINE_ENV, IX_API_MAX_PENDING_SUBMITS: '1' });
    try {
      await withJobsLocked(async () => {
        // One insert in flight, stuck behind the lock...
        const inFlight = timed(submit(app));
        await eventually(async () => (await waitingOnLocks(db.pool)) === 1, 'the insert waiting on the lock');
        // ...then two more: one waits in the queue (its one place), the other is turned away.
        const [first, second] = await Promise.all([timed(submit(app)), timed(submit(app))]);
        const [refused, queued] = [first!, second!].sort((a, b) => a.ms - b.ms);
        expect(expectUnavailable(refused!, DEADLINE_MS / 2)).toContain('IX_API_MAX_PENDING_SUBMITS');
        expectUnavailable(queued!);
        expectUnavailable(await inFlight);
      });
      expect((await submit(app)).statusCode).toBe(201);
    } finally {
      await app.close();
    }
  }, 20_000);
});
