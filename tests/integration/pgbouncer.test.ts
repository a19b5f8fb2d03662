/**
 * ix behind a real PgBouncer 1.18 in transaction pooling mode (tests/support/pgbouncer.ts): the
 * API, workers, callback delivery and the pruner wired as `ix start` wires them
 * (startWorkerParts, listenUrlFor, poolOptions with IX_DB_POOLER=transaction), each on pools of
 * its own through PgBouncer's 3 server connections, so every transaction may land on a server
 * connection another client used last.
 */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, metricsFor } from '../../src/api/index.js';
import { listenUrlFor, poolOptions } from '../../src/cli/database.js';
import { startWorkerParts, type WorkerParts } from '../../src/cli/worker.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { Job, RequestIX } from '../../src/contracts/index.js';
import {
  checkServerSettings,
  closePool,
  jobGet,
  jobInsertMany,
  openPool,
  workerHeartbeat,
} from '../../src/store/index.js';
import { echoPipeline, type Pipeline, Sweeper } from '../../src/worker/index.js';
import { JSON_HEADERS } from '../support/api.js';
import { newSecret } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { admitted, claimPending, insertPending } from '../support/jobs.js';
import { type CapturedLogs, captureLogs } from '../support/logs.js';
import { type PgBouncer, startPgBouncer } from '../support/pgbouncer.js';
import { startReceiver } from '../support/receiver.js';
import { eventually, statusCounts } from '../support/worker.js';

const db = useTestDatabase();
const POOL_SIZE = 3;
let bouncer: PgBouncer;
let bouncerUrl: string;

beforeAll(async () => {
  // What the README asks of the operator: ix's statement timeout set on the server (ix cannot
  // send it through the pooler). And a time zone other than UTC, on which ix must not depend.
  await db.pool.query(`ALTER DATABASE ${db.name} SET statement_timeout = '30s'`);
  await db.pool.query(`ALTER DATABASE ${db.name} SET timezone = 'Asia/Kolkata'`);
  await db.pool.query(`ALTER DATABASE ${db.name} SET jit = off`);
  bouncer = await startPgBouncer(db.url, POOL_SIZE);
  bouncerUrl = bouncer.urlFor(db.url);
}, 30_000);
afterAll(async () => {
  await bouncer?.stop();
});

function configWith(env: Record<string, string>): Config {
  const config = loadConfig({
    IX_DB_POOLER: 'transaction',
    IX_DB_POOL_SIZE: '4',
    IX_CALLBACK_ALLOW_PRIVATE: 'true',
    IX_CALLBACK_SECRET: newSecret(),
    IX_WORKER_POLL_INTERVAL_MS: '100',
    IX_WATCH_POLL_INTERVAL_MS: '100',
    IX_HEARTBEAT_INTERVAL_SECONDS: '1',
    IX_HEARTBEAT_TIMEOUT_SECONDS: '2',
    ...env,
  });
  // Backoffs in milliseconds, as tests/support/worker.ts does.
  config.worker.retryBaseSeconds = 0.05;
  return config;
}

interface Ix {
  app: FastifyInstance;
  logs: CapturedLogs;
  pools: pg.Pool[];
  stop(): Promise<void>;
}

/** One process's API and `workers` workers (with delivery and pruner), each on a pool of its own. */
async function startIx(options: {
  listen: boolean;
  workers: number;
  pipeline?: Pipeline;
  env?: Record<string, string>;
}): Promise<Ix> {
  const logs = captureLogs();
  const config = configWith({ ...(options.listen ? { IX_LISTEN_URL: db.url } : {}), ...options.env });
  const pool = () => openPool(bouncerUrl, poolOptions(config, 'ix test', { logger: logs.logger }));
  const pools = [await pool()];
  // Once per process, as `ix start` does.
  const listenUrl = listenUrlFor(config, bouncerUrl, logs.logger);
  const app = await buildApi({ pool: pools[0]!, connectionString: listenUrl, config, logger: logs.logger });
  const parts: WorkerParts[] = [];
  for (let i = 0; i < options.workers; i++) {
    const own = await pool();
    pools.push(own);
    const pipeline = options.pipeline ?? echoPipeline;
    parts.push(
      await startWorkerParts(own, listenUrl, config, logs.logger, pipeline, metricsFor(own, config)),
    );
  }
  return {
    app,
    logs,
    pools,
    async stop() {
      await Promise.all(parts.map((p) => p.stop()));
      await app.close();
      await Promise.all(pools.map((p) => closePool(p)));
    },
  };
}

async function submit(ix: Ix, request: RequestIX, callbackUrl: string | null = null): Promise<Job> {
  const response = await ix.app.inject({
    method: 'POST',
    url: '/jobs',
    headers: JSON_HEADERS,
    payload: JSON.stringify({ request, callback_url: callbackUrl }),
  });
  expect(response.statusCode).toBe(201);
  return response.json() as Job;
}

async function waited(ix: Ix, url: string): Promise<Job> {
  const response = await ix.app.inject({ method: 'GET', url });
  expect(response.statusCode).toBe(200);
  return response.json() as Job;
}

/** Sessions of the test database whose last statement was a LISTEN, direct or behind PgBouncer. */
async function listeningSessions(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'`,
  );
  return rows[0]!.n;
}

const warnings = (logs: CapturedLogs) => logs.entries().filter((entry) => Number(entry.level) >= 40);

describe('behind PgBouncer (transaction pooling)', () => {
  it('PgBouncer refuses the startup parameters ix sends a direct server: why IX_DB_POOLER exists', async () => {
    await expect(openPool(bouncerUrl, { max: 1, statementTimeoutMs: 1_000 })).rejects.toThrow(
      /unsupported startup parameter/,
    );
  });

  it("named statements break through it (a second client finds the first one's); unnamed ones do not", async () => {
    const named = { name: 'ix_pgbouncer_probe', text: 'SELECT 1 AS one' };
    const run = async (preparedStatements: boolean) => {
      const options = { max: 1, transactionPooler: true, preparedStatements };
      const [a, b] = [await openPool(bouncerUrl, options), await openPool(bouncerUrl, options)];
      try {
        // PgBouncer hands out its most recently used idle server connection: b gets a's.
        await a.query(named);
        return await b.query(named);
      } finally {
        await Promise.all([closePool(a), closePool(b)]);
      }
    };
    await expect(run(true)).rejects.toThrow(/prepared statement "ix_pgbouncer_probe" already exists/);
    expect((await run(false)).rows).toEqual([{ one: 1 }]);
  });

  it("ix pools share the 3 server connections, which carry the server's statement timeout and zone", async () => {
    const config = configWith({});
    const pools = await Promise.all(
      Array.from({ length: 4 }, () => openPool(bouncerUrl, poolOptions(config, 'ix test'))),
    );
    try {
      const pids = new Set<number>();
      await Promise.all(
        pools.flatMap((pool) =>
          Array.from({ length: 4 }, async () => {
            const { rows } = await pool.query<{ pid: number; timeout: string; zone: string }>(
              `SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout,
                current_setting('TimeZone') AS zone, pg_sleep(0.05)`,
            );
            pids.add(rows[0]!.pid);
            expect(rows[0]).toMatchObject({ timeout: '30s', zone: 'Asia/Kolkata' });
          }),
        ),
      );
      expect(pools.reduce((n, pool) => n + pool.totalCount, 0)).toBeGreaterThan(POOL_SIZE);
      expect(pids.size).toBeLessThanOrEqual(POOL_SIZE);
    } finally {
      await Promise.all(pools.map((p) => closePool(p)));
    }
  });

  it('warns when the server statement timeout is not the one configured', async () => {
    const logs = captureLogs();
    const pool = await openPool(bouncerUrl, { max: 1, transactionPooler: true });
    try {
      await checkServerSettings(pool, {
        max: 1,
        transactionPooler: true,
        statementTimeoutMs: 5_000,
        logger: logs.logger,
      });
      expect(warnings(logs)).toEqual([
        expect.objectContaining({ server_statement_timeout_ms: 30_000, configured_ms: 5_000 }),
      ]);
    } finally {
      await closePool(pool);
    }
  });

  it('submit → worker → result by id and by request id, in UTC; a waiter is told through IX_LISTEN_URL', async () => {
    const ix = await startIx({ listen: true, workers: 1 });
    try {
      const request = makeRequest({ input: { sleep_ms: 300 } });
      const submitted = await submit(ix, request);
      expect(submitted.created_at).toMatch(/Z$/);
      expect(Math.abs(Date.parse(submitted.created_at) - Date.now())).toBeLessThan(10_000);
      const done = await waited(ix, `/jobs/${submitted.job_id}?wait=10`);
      expect(done).toMatchObject({ status: 'done', response: { result: { sleep_ms: 300 } } });
      expect(done.finished_at).toMatch(/Z$/);
      const byRequest = await waited(
        ix,
        `/jobs?client_id=${request.ix_client_id}&request_id=${encodeURIComponent(request.request_id)}`,
      );
      expect(byRequest).toEqual(done);
      expect(warnings(ix.logs)).toEqual([]);
    } finally {
      await ix.stop();
    }
  });

  it('with IX_LISTEN_URL an idle worker is woken by NOTIFY, not its poll', async () => {
    const ix = await startIx({ listen: true, workers: 1, env: { IX_WORKER_POLL_INTERVAL_MS: '600000' } });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300)); // idle: its first claim found nothing
      const started = Date.now();
      const job = await submit(ix, makeRequest());
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'done', 'done', 5_000);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await ix.stop();
    }
  });

  it('without IX_LISTEN_URL: one warning, no LISTEN, and work completes by polling', async () => {
    // An earlier test's direct listeners may still be ending.
    await eventually(async () => (await listeningSessions()) === 0, 'no session listening');
    const ix = await startIx({ listen: false, workers: 2 });
    try {
      const jobs = await Promise.all(Array.from({ length: 5 }, () => submit(ix, makeRequest())));
      for (const job of jobs)
        expect(await waited(ix, `/jobs/${job.job_id}?wait=10`)).toMatchObject({ status: 'done' });
      expect(await listeningSessions()).toBe(0);
    } finally {
      await ix.stop();
    }
    expect(warnings(ix.logs)).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/IX_LISTEN_URL/) }),
    ]);
  });

  it('delivers a callback to a local receiver', async () => {
    const receiver = await startReceiver();
    const ix = await startIx({ listen: true, workers: 1 });
    try {
      const job = await submit(ix, makeRequest(), receiver.url());
      await eventually(
        async () => (await jobGet(db.pool, job.job_id))?.callback_status === 'delivered',
        'callback delivered',
      );
      expect(receiver.requests).toHaveLength(1);
      expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({ job_id: job.job_id, status: 'done' });
    } finally {
      await ix.stop();
      await receiver.close();
    }
  });

  it('a retryable failure runs again and ends done', async () => {
    const runs = new Map<string, number>();
    const pipeline: Pipeline = async (request) => {
      const n = (runs.get(request.request_id) ?? 0) + 1;
      runs.set(request.request_id, n);
      return n === 1 ? { error: 'busy', retryable: true } : { result: { runs: n } };
    };
    const ix = await startIx({ listen: true, workers: 1, pipeline });
    try {
      const job = await submit(ix, makeRequest());
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'done', 'done');
      const done = await jobGet(db.pool, job.job_id);
      expect(done).toMatchObject({ attempts: 1, response: { result: { runs: 2 } } });
      expect(done!.attempt_history.map((run) => run.outcome)).toEqual(['retry', 'done']);
    } finally {
      await ix.stop();
    }
  });

  it('cancels a running job: the worker aborts it', async () => {
    const ix = await startIx({ listen: true, workers: 1 });
    try {
      const job = await submit(ix, makeRequest({ input: { sleep_ms: 60_000 } }));
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'running', 'running');
      // The answer waits for the worker to abort the run and record it (told on the cancel channel).
      const response = await ix.app.inject({ method: 'POST', url: `/jobs/${job.job_id}/cancel` });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ status: 'cancelled' });
      await eventually(async () => (await statusCounts(db.pool)).running === undefined, 'nothing running');
    } finally {
      await ix.stop();
    }
  });

  it('rescues a job from a dead worker and runs it', async () => {
    const dead = '00000000-0000-7000-8000-0000000000dd';
    const config = configWith({});
    const pool = await openPool(bouncerUrl, poolOptions(config, 'ix test'));
    const { job } = await insertPending(pool, makeRequest(), null);
    await workerHeartbeat(pool, dead);
    expect(await claimPending(pool, 1, dead)).toHaveLength(1);
    const ix = await startIx({ listen: true, workers: 1 });
    try {
      await new Sweeper(pool, config.worker, ix.logs.logger).runOnce(new Date(Date.now() + 60_000));
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'done', 'rescued, done');
      const done = await jobGet(db.pool, job.job_id);
      expect(done!.attempt_history.map((run) => [run.outcome, run.worker_id === dead])).toEqual([
        ['worker_lost', true],
        ['done', false],
      ]);
    } finally {
      await ix.stop();
      await closePool(pool);
    }
  });

  it('a batch of 150 goes in without ON CONFLICT; with a key in use among them, it gets the answers of ON CONFLICT', async () => {
    const pool = await openPool(bouncerUrl, poolOptions(configWith({}), 'ix test'));
    const fresh = () => Array.from({ length: 150 }, () => ({ request: makeRequest(), callbackUrl: null }));
    try {
      const batch = fresh();
      const first = admitted(await jobInsertMany(pool, batch));
      expect(first.every((r) => r.created)).toBe(true);
      expect(await jobGet(db.pool, first[0]!.job.job_id)).toEqual(first[0]!.job);
      const more = fresh();
      const second = admitted(await jobInsertMany(pool, [...more, batch[0]!]));
      expect(second.map((r) => r.created)).toEqual([...more.map(() => true), false]);
      expect(second[150]).toEqual({ job: first[0]!.job, created: false, conflict: null });
      expect(await statusCounts(db.pool)).toEqual({ pending: 300 });
    } finally {
      await closePool(pool);
    }
  });

  it('3 workers on pools of their own claim each of 300 jobs once', async () => {
    const calls = new Map<string, number>();
    const pipeline: Pipeline = async (request) => {
      calls.set(request.request_id, (calls.get(request.request_id) ?? 0) + 1);
      return { result: { ok: true } };
    };
    const ix = await startIx({
      listen: true,
      workers: 3,
      pipeline,
      env: { IX_WORKER_CONCURRENCY: '10', IX_WORKER_PREFETCH: '10' },
    });
    try {
      for (let i = 0; i < 300; i += 50)
        await Promise.all(Array.from({ length: 50 }, () => submit(ix, makeRequest())));
      await eventually(async () => (await statusCounts(db.pool)).done === 300, 'all 300 done', 60_000);
    } finally {
      await ix.stop();
    }
    expect(calls.size).toBe(300);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(await statusCounts(db.pool)).toEqual({ done: 300 });
    expect(warnings(ix.logs)).toEqual([]);
    expect(bouncer.log()).not.toMatch(/prepared statement|ERROR/);
  }, 90_000);
});
