/**
 * Retention on a real database: finished jobs pruned by outcome to tombstones, tombstones holding
 * their keys (410 gone) until they expire, one pruner at a time, and a prune racing resubmits.
 * The clock is injected (`now`): nothing here waits for days to pass.
 */
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../src/config.js';
import { type Job, type RequestIX, TombstoneSchema } from '../../src/contracts/index.js';
import {
  createPool,
  JobGoneError,
  jobCancel,
  jobGet,
  jobInsertMany,
  tombstoneGet,
} from '../../src/store/index.js';
import { type Pipeline, Pruner, prunedCount } from '../../src/worker/index.js';
import { buildTestApi, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest, success } from '../support/factories.js';
import { claimNextPending, finishedJobs, finishJob, insertPending } from '../support/jobs.js';
import { eventually, makeWorker, silentLogger } from '../support/worker.js';

const db = useTestDatabase();
const DAY_MS = 86_400_000;
const days = (n: number) => new Date(Date.now() + n * DAY_MS);

/** The defaults: done and cancelled 7 days, error 30, tombstones 30 from the prune. */
function retention(env: Record<string, string> = {}): Config['retention'] {
  return { ...loadConfig(env).retention, pruneBatchSize: 50 };
}

function pruner(env: Record<string, string> = {}, pool: pg.Pool = db.pool): Pruner {
  return new Pruner(pool, retention(env), silentLogger);
}

async function cancelledJob(): Promise<Job> {
  const { job } = await insertPending(db.pool, makeRequest(), null);
  const client = await db.pool.connect();
  try {
    return (await jobCancel(client, job.job_id))!;
  } finally {
    client.release();
  }
}

async function statusOf(jobId: string): Promise<string> {
  const job = await jobGet(db.pool, jobId);
  if (job) return job.status;
  return (await tombstoneGet(db.pool, jobId)) ? 'pruned' : 'missing';
}

async function count(table: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]!.n;
}

describe('expiry per outcome', () => {
  it('prunes done and cancelled jobs after 7 days and error jobs after 30, each to a tombstone', async () => {
    const [done, error] = await finishedJobs(db.pool, null, ['done', 'error']);
    const cancelled = await cancelledJob();

    const early = await pruner().runOnce({ now: days(6) });
    expect(prunedCount(early)).toBe(0);

    const week = await pruner().runOnce({ now: days(8) });
    expect(week.pruned).toEqual({ done: 1, error: 0, cancelled: 1 });
    expect(await statusOf(done!.job_id)).toBe('pruned');
    expect(await statusOf(cancelled.job_id)).toBe('pruned');
    expect(await statusOf(error!.job_id)).toBe('error');

    const month = await pruner().runOnce({ now: days(31) });
    expect(month.pruned).toEqual({ done: 0, error: 1, cancelled: 0 });
    const tombstone = await tombstoneGet(db.pool, error!.job_id);
    expect(TombstoneSchema.parse(tombstone)).toMatchObject({
      job_id: error!.job_id,
      ix_id: error!.ix_id,
      client_id: error!.client_id,
      request_id: error!.request_id,
      status: 'error',
      finished_at: error!.finished_at,
    });
    // The tombstone's own period runs from the prune (the injected clock), 30 days by default.
    expect(Date.parse(tombstone!.key_free_after!) - Date.parse(tombstone!.pruned_at)).toBe(30 * DAY_MS);
    // What the job carried is gone: the request, its response and the callback log.
    expect(await count('ix_jobs')).toBe(0);
    expect(await count('ix_job_tombstones')).toBe(3);
  });

  it('follows each setting: `off` keeps that outcome forever, hours count as hours', async () => {
    const [done, error] = await finishedJobs(db.pool, null, ['done', 'error']);
    const result = await pruner({ IX_RETAIN_DONE: 'off', IX_RETAIN_ERROR: '12h' }).runOnce({
      now: new Date(Date.now() + 13 * 3_600_000),
    });
    expect(result.pruned).toEqual({ done: 0, error: 1, cancelled: 0 });
    expect(await statusOf(done!.job_id)).toBe('done');
    expect(await statusOf(error!.job_id)).toBe('pruned');
    // Nothing kept for a limited time: the pass reads no job at all.
    const none = await pruner({
      IX_RETAIN_DONE: 'off',
      IX_RETAIN_ERROR: 'off',
      IX_RETAIN_CANCELLED: 'off',
    }).runOnce({ now: days(10_000) });
    expect(none).toMatchObject({ pruned: { done: 0, error: 0, cancelled: 0 }, statements: 1 });
  });

  it('a dry run counts what it would remove and removes nothing', async () => {
    await finishedJobs(db.pool, null, ['done', 'done', 'error']);
    const dry = await pruner().runOnce({ now: days(31), dryRun: true });
    expect(dry.pruned).toEqual({ done: 2, error: 1, cancelled: 0 });
    expect(await count('ix_jobs')).toBe(3);
    expect(await count('ix_job_tombstones')).toBe(0);
    await pruner().runOnce({ now: days(31) });
    const later = await pruner().runOnce({ now: days(62), dryRun: true });
    expect(later.tombstonesExpired).toBe(3);
    expect(await count('ix_job_tombstones')).toBe(3);
  });
});

describe('what is never pruned', () => {
  it('a job inside its retention, a pending or running job, and one whose callback is still due', async () => {
    const [inside] = await finishedJobs(db.pool, null, ['done']);
    const [calling] = await finishedJobs(db.pool, 'https://example.com/hook', ['done']);
    const running = await (async () => {
      await insertPending(db.pool, makeRequest(), null);
      return (await claimNextPending(db.pool))!;
    })();
    const { job: pending } = await insertPending(db.pool, makeRequest(), null);
    const result = await pruner().runOnce({ now: days(6) });
    expect(prunedCount(result)).toBe(0);
    // Years later: only the delivered duty frees a job; pending and running ones have no retention.
    const late = await pruner().runOnce({ now: days(3_650) });
    expect(late.pruned).toEqual({ done: 1, error: 0, cancelled: 0 });
    expect(await statusOf(inside!.job_id)).toBe('pruned');
    expect(await statusOf(calling!.job_id)).toBe('done');
    expect(await statusOf(running.job_id)).toBe('running');
    expect(await statusOf(pending.job_id)).toBe('pending');

    await db.pool.query('DELETE FROM ix_callback_queue WHERE job_id = $1', [calling!.job_id]);
    expect((await pruner().runOnce({ now: days(3_650) })).pruned.done).toBe(1);
  });
});

describe('a pruned key through the API', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApi(db.pool);
  });
  afterAll(async () => {
    await app?.close();
  });

  const submit = (request: RequestIX) =>
    app.inject({ method: 'POST', url: '/jobs', headers: JSON_HEADERS, payload: { request } });

  it('a resubmit answers 410 gone with the tombstone, runs nothing, and GETs answer the same', async () => {
    const calls: string[] = [];
    const pipeline: Pipeline = async (request) => {
      calls.push(request.request_id);
      return { result: { ok: true } };
    };
    const worker = makeWorker(db, pipeline);
    await worker.start();
    try {
      const request = makeRequest();
      const created = await submit(request);
      expect(created.statusCode).toBe(201);
      const job = created.json<Job>();
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'done', 'the job ran');
      expect((await pruner().runOnce({ now: days(8) })).pruned.done).toBe(1);

      const again = await submit(request);
      expect(again.statusCode).toBe(410);
      const { error } = again.json<{ error: { code: string; job_id: string; tombstone: unknown } }>();
      expect(error.code).toBe('gone');
      expect(error.job_id).toBe(job.job_id);
      expect(TombstoneSchema.parse(error.tombstone)).toMatchObject({
        job_id: job.job_id,
        ix_id: job.ix_id,
        client_id: request.ix_client_id,
        request_id: request.request_id,
        status: 'done',
      });
      // Nothing was queued to run: no job row, no queue row for the key.
      expect(await count('ix_jobs')).toBe(0);
      expect(await count('ix_job_queue')).toBe(0);

      // A different request under the pruned key is still a conflict, naming the pruned job.
      const other = await submit({ ...request, input: { another: 'request' } });
      expect(other.statusCode).toBe(409);
      expect(other.json<{ error: { code: string; job_id: string } }>().error).toMatchObject({
        code: 'idempotency_conflict',
        job_id: job.job_id,
      });

      for (const url of [
        `/jobs/${job.job_id}`,
        `/jobs?client_id=${request.ix_client_id}&request_id=${request.request_id}`,
      ]) {
        const got = await app.inject({ method: 'GET', url });
        expect(got.statusCode).toBe(410);
        expect(got.json<{ error: { code: string; tombstone: { job_id: string } } }>().error).toMatchObject({
          code: 'gone',
          tombstone: { job_id: job.job_id },
        });
      }
      const cancel = await app.inject({ method: 'POST', url: `/jobs/${job.job_id}/cancel` });
      expect(cancel.statusCode).toBe(410);
    } finally {
      await worker.stop();
    }
    expect(calls).toHaveLength(1);
  });

  it('once the tombstone has expired, the key makes a new job', async () => {
    const request = makeRequest();
    const first = (await submit(request)).json<Job>();
    const claimed = (await claimNextPending(db.pool))!;
    expect(await finishJob(db.pool, claimed.job_id, claimed.attempts, success(claimed.ix_id))).toBe(true);
    await pruner().runOnce({ now: days(8) });
    expect((await submit(request)).statusCode).toBe(410);
    // The tombstone lives 30 days from the prune (day 8): still there on day 37.
    expect((await pruner().runOnce({ now: days(37) })).tombstonesExpired).toBe(0);
    expect((await submit(request)).statusCode).toBe(410);
    expect((await pruner().runOnce({ now: days(39) })).tombstonesExpired).toBe(1);
    const renewed = await submit(request);
    expect(renewed.statusCode).toBe(201);
    expect(renewed.json<Job>().job_id).not.toBe(first.job_id);
    expect(renewed.json<Job>().status).toBe('pending');
  });

  it('another client’s pruned job answers 404, like a missing one', async () => {
    const keyed = await buildTestApi(db.pool, {
      IX_API_KEYS: 'client-a=key-a-0123456789abcdef,client-b=key-b-0123456789abcdef',
    });
    try {
      const [job] = await finishedJobs(db.pool, null, ['done']);
      await db.pool.query(`UPDATE ix_jobs SET client_id = 'client-a'`);
      await pruner().runOnce({ now: days(8) });
      const asB = { authorization: 'Bearer key-b-0123456789abcdef' };
      const asA = { authorization: 'Bearer key-a-0123456789abcdef' };
      const url = `/jobs/${job!.job_id}`;
      expect((await keyed.inject({ method: 'GET', url, headers: asB })).statusCode).toBe(404);
      expect((await keyed.inject({ method: 'GET', url, headers: asA })).statusCode).toBe(410);
    } finally {
      await keyed.close();
    }
  });
});

describe('one pruner at a time', () => {
  it('two pruners at once remove each job once, and the second does not wait for the first', async () => {
    await finishedJobs(
      db.pool,
      null,
      Array.from({ length: 400 }, (_, i) => (i % 4 === 0 ? 'error' : 'done')),
    );
    const other = createPool(db.url, { max: 2 });
    try {
      const started = performance.now();
      const durations: number[] = [];
      const timed = async (p: Pruner) => {
        const result = await p.runOnce({ now: days(31) });
        durations.push(performance.now() - started);
        return result;
      };
      const [a, b] = await Promise.all([timed(pruner()), timed(pruner({}, other))]);
      expect(prunedCount(a) + prunedCount(b)).toBe(400);
      expect(await count('ix_jobs')).toBe(0);
      expect(await count('ix_job_tombstones')).toBe(400);
      // Either the passes overlapped and one skipped at once, or they ran one after the other.
      const skipped = [a, b].filter((r) => r.skipped);
      if (skipped.length === 1) expect(prunedCount(skipped[0]!)).toBe(0);
    } finally {
      await other.end();
    }
  });

  it('a pass finds the lock held elsewhere and returns at once, doing nothing', async () => {
    await finishedJobs(db.pool, null, ['done']);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(hashtextextended('ix.prune', 0))`);
      const started = performance.now();
      const result = await pruner().runOnce({ now: days(8) });
      expect(result.skipped).toBe(true);
      expect(prunedCount(result)).toBe(0);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(await count('ix_jobs')).toBe(1);
    } finally {
      await holder.end();
    }
    expect((await pruner().runOnce({ now: days(8) })).pruned.done).toBe(1);
  });
});

describe('a prune racing resubmits of the same keys', () => {
  it('every resubmit is answered by the job or by its tombstone, and none makes a new job', async () => {
    const jobs = await finishedJobs(
      db.pool,
      null,
      Array.from({ length: 300 }, () => 'done'),
    );
    const requests = jobs.map((job) => ({ request: job.request, callbackUrl: null }));
    const submitters = createPool(db.url, { max: 6 });
    let pruning = true;
    const outcomes = { replayed: 0, gone: 0, created: 0 };
    const resubmit = async () => {
      while (pruning) {
        // A batch of 20 keys at a time, from a random place, so the prune's batches and the
        // resubmits cross in every order.
        const from = Math.floor(Math.random() * (requests.length - 20));
        for (const result of await jobInsertMany(submitters, requests.slice(from, from + 20))) {
          if (result.created) outcomes.created += 1;
          else if (result.conflict instanceof JobGoneError) outcomes.gone += 1;
          else if (result.job && !result.conflict) outcomes.replayed += 1;
          else throw new Error(`unexpected result: ${result.conflict?.message}`);
        }
      }
    };
    try {
      const racers = Array.from({ length: 4 }, resubmit);
      const result = await new Pruner(db.pool, { ...retention(), pruneBatchSize: 5 }, silentLogger).runOnce({
        now: days(8),
      });
      pruning = false;
      await Promise.all(racers);
      expect(result.pruned.done).toBe(300);
      expect(outcomes.created).toBe(0);
      expect(outcomes.replayed).toBeGreaterThan(0);
      expect(outcomes.gone + outcomes.replayed).toBeGreaterThan(300);
      expect(await count('ix_jobs')).toBe(0);
      expect(await count('ix_job_queue')).toBe(0);
      // Afterwards every key answers from its tombstone.
      const after = await jobInsertMany(submitters, requests);
      expect(after.every((r) => r.conflict instanceof JobGoneError)).toBe(true);
    } finally {
      pruning = false;
      await submitters.end();
    }
  });

  it('a job row waits for a snapshot older than its tombstone, which still sees the job', async () => {
    const [job] = await finishedJobs(db.pool, null, ['done']);
    const old = new pg.Client({ connectionString: db.url });
    await old.connect();
    try {
      // A transaction whose snapshot predates the tombstone: were the row deleted now, a submit
      // in it would see neither the job nor its tombstone.
      await old.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await old.query('SELECT 1 FROM ix_jobs LIMIT 1');
      const p = new Pruner(db.pool, retention(), silentLogger);
      const first = await p.runOnce({ now: days(8), settleMs: 200 });
      expect(first.waiting).toBe(1);
      expect(prunedCount(first)).toBe(0);
      expect(await statusOf(job!.job_id)).toBe('done');
      // A resubmit in that snapshot meets the job still stored: a replay, not a new job.
      const [replay] = await jobInsertMany(old, [{ request: job!.request, callbackUrl: null }]);
      expect(replay).toMatchObject({ created: false, conflict: null, job: { job_id: job!.job_id } });
      await old.query('COMMIT');
      const second = await p.runOnce({ now: days(8) });
      expect(second).toMatchObject({ waiting: 0, pruned: { done: 1 } });
      expect(await statusOf(job!.job_id)).toBe('pruned');
    } finally {
      await old.end();
    }
  });
});
