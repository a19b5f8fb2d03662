import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import type { RequestIX } from '../../src/contracts/index.js';
import { jobGet, workerHeartbeat } from '../../src/store/index.js';
import { LONE_LEASES_DELAY_MS } from '../../src/worker/completer.js';
import { echoPipeline, type Pipeline, Sweeper } from '../../src/worker/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { claimPending, insertPending } from '../support/jobs.js';
import {
  eventually,
  makeWorker,
  silentLogger,
  statusCounts,
  submitMany,
  workerConfig,
} from '../support/worker.js';

const db = useTestDatabase();

function countingPipeline(): { pipeline: Pipeline; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  return {
    calls,
    pipeline: async (request: RequestIX) => {
      calls.set(request.request_id, (calls.get(request.request_id) ?? 0) + 1);
      return { result: { seen: request.request_id } };
    },
  };
}

describe('worker', () => {
  it('2,000 jobs, 4 workers in one process: every pipeline call happens once, every job ends done', async () => {
    await submitMany(db.pool, 2000);
    const { pipeline, calls } = countingPipeline();
    const workers = Array.from({ length: 4 }, () =>
      makeWorker(db, pipeline, { concurrency: 10, prefetch: 20 }),
    );
    await Promise.all(workers.map((w) => w.start()));
    try {
      await eventually(
        async () => (await statusCounts(db.pool)).done === 2000,
        'all 2,000 jobs done',
        60_000,
      );
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    expect(calls.size).toBe(2000);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    expect(await statusCounts(db.pool)).toEqual({ done: 2000 });
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_job_leases');
    expect(rows[0].n).toBe(0);
  }, 90_000);

  it('runOnce claims up to its free slots, runs them and records the outcomes', async () => {
    const ids = await submitMany(db.pool, 5, { hello: 'world' });
    const worker = makeWorker(db, echoPipeline, { concurrency: 3 });
    expect(await worker.runOnce()).toBe(3);
    expect(await worker.runOnce()).toBe(2);
    expect(await worker.runOnce()).toBe(0);
    const job = await jobGet(db.pool, ids[0]!);
    expect(job).toMatchObject({ status: 'done', response: { error: null, result: { hello: 'world' } } });
    expect(worker.heldCount).toBe(0);
  });

  it("a claim's ended lease goes with the next outcomes, or alone once LONE_LEASES_DELAY_MS has passed without any", async () => {
    const query = vi.spyOn(db.pool, 'query');
    /** Statements that delete ended leases and record no outcome. */
    const leasesAlone = () =>
      query.mock.calls.filter(([config]) => {
        const statement = config as unknown as { name?: string; values?: unknown[] };
        if (statement.name !== 'ix_job_complete_many') return false;
        const outcomes = JSON.parse(String(statement.values?.[0])) as { job_id: string[] };
        return outcomes.job_id.length === 0;
      }).length;
    const leases = async () =>
      (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_job_leases')).rows[0]!.n;
    const worker = makeWorker(db, echoPipeline, { pollIntervalMs: 600_000 });
    await worker.start();
    try {
      await submitMany(db.pool, 3);
      await eventually(async () => (await statusCounts(db.pool)).done === 3, 'the first 3 jobs done');
      // Every job of the first claim ended: its lease waits for the next outcomes.
      await eventually(async () => worker.heldCount === 0, 'nothing held');
      expect(await leases()).toBe(1);
      const firstEnded = Date.now();
      await submitMany(db.pool, 2);
      await eventually(async () => (await statusCounts(db.pool)).done === 5, 'all 5 jobs done');
      await eventually(async () => worker.heldCount === 0, 'nothing held');
      if (Date.now() - firstEnded < LONE_LEASES_DELAY_MS) {
        // The first lease went with the second claim's outcomes; the second one waits in turn.
        expect(await leases()).toBe(1);
        expect(leasesAlone()).toBe(0);
      }
      await eventually(async () => (await leases()) === 0, 'the last lease deleted alone', 5_000);
      expect(leasesAlone()).toBe(1);
    } finally {
      await worker.stop();
      query.mockRestore();
    }
  });

  it('a pipeline that outlives its timeout, on its last attempt, ends error with a timeout message, and the worker goes on', async () => {
    const [slow] = await submitMany(db.pool, 1, { sleep_ms: 60_000 });
    const worker = makeWorker(db, echoPipeline, { requestTimeoutSeconds: 1, maxAttempts: 1 });
    const started = Date.now();
    await worker.runOnce();
    expect(Date.now() - started).toBeLessThan(5_000);
    const job = await jobGet(db.pool, slow!);
    expect(job?.status).toBe('error');
    expect(job?.response?.error).toMatch(/timed out after 1 s/);
    const [next] = await submitMany(db.pool, 1);
    await worker.runOnce();
    expect((await jobGet(db.pool, next!))?.status).toBe('done');
  });

  it('a pipeline that ignores its abort signal still times out', async () => {
    const [id] = await submitMany(db.pool, 1);
    const stubborn: Pipeline = () => new Promise(() => {});
    await makeWorker(db, stubborn, { requestTimeoutSeconds: 1, maxAttempts: 1 }).runOnce();
    expect((await jobGet(db.pool, id!))?.response?.error).toMatch(/timed out/);
  });

  it('a throwing pipeline, on its last attempt, ends error with its message and no stack trace', async () => {
    const [id] = await submitMany(db.pool, 1);
    const throwing: Pipeline = async () => {
      throw new Error('model weights missing');
    };
    await makeWorker(db, throwing, { maxAttempts: 1 }).runOnce();
    const job = await jobGet(db.pool, id!);
    expect(job).toMatchObject({
      status: 'error',
      response: { error: 'model weights missing', result: null },
    });
  });

  it('a pipeline returning garbage ends error instead of crashing the worker', async () => {
    const [id] = await submitMany(db.pool, 1);
    const garbage = (async () => 42) as unknown as Pipeline;
    await makeWorker(db, garbage).runOnce();
    expect((await jobGet(db.pool, id!))?.response?.error).toMatch(/neither/);
  });

  it('echo: input.fail becomes the error', async () => {
    const [id] = await submitMany(db.pool, 1, { fail: 'page 3 unreadable' });
    await makeWorker(db, echoPipeline).runOnce();
    expect(await jobGet(db.pool, id!)).toMatchObject({
      status: 'error',
      response: { error: 'page 3 unreadable' },
    });
  });

  it('poison job: after IX_MAX_ATTEMPTS rescues it ends error, abandoned', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    const deadWorker = '00000000-0000-7000-8000-0000000000dd';
    await workerHeartbeat(db.pool, deadWorker);
    const config = workerConfig({ maxAttempts: 3, heartbeatTimeoutSeconds: 30 });
    const sweeper = new Sweeper(db.pool, config, silentLogger);
    const later = new Date(Date.now() + 120_000);
    for (let i = 0; i < 3; i++) {
      expect(await claimPending(db.pool, 1, deadWorker)).toHaveLength(1);
      await sweeper.runOnce(later);
    }
    const final = await jobGet(db.pool, job.job_id);
    expect(final).toMatchObject({ status: 'error', attempts: 3 });
    expect(final?.response?.error).toMatch(/abandoned after 3 attempts/);
    expect(final!.attempt_history.map((run) => [run.attempt, run.outcome, run.worker_id])).toEqual([
      [1, 'worker_lost', deadWorker],
      [2, 'worker_lost', deadWorker],
      [3, 'worker_lost', deadWorker],
    ]);
    expect(final!.started_at).toBeNull();
  });

  it('graceful stop: running jobs finish or go back to pending at once, like prefetched ones, spending no attempt', async () => {
    const fast = await submitMany(db.pool, 2, { sleep_ms: 100 });
    const slow = await submitMany(db.pool, 2, { sleep_ms: 60_000 });
    const queued = await submitMany(db.pool, 2, { sleep_ms: 100 });
    const worker = makeWorker(db, echoPipeline, { concurrency: 4, prefetch: 2, shutdownGraceSeconds: 1 });
    await worker.start();
    await eventually(async () => worker.heldCount === 6, 'the worker holds all six jobs');
    const stopping = Date.now();
    await worker.stop();
    expect(Date.now() - stopping).toBeLessThan(4_000);
    for (const id of fast) expect((await jobGet(db.pool, id))?.status).toBe('done');
    // Aborted by the stop, not failed: they run again as if never started (but their claim is
    // fenced off: the epoch moved on, so a late outcome of the aborted run cannot apply).
    for (const id of slow) {
      const handedBack = await jobGet(db.pool, id);
      expect(handedBack).toMatchObject({ status: 'pending', attempts: 0, started_at: null });
      // The aborted run is in the history, not charged: the next one is attempt 1 again.
      expect(handedBack!.attempt_history).toEqual([
        expect.objectContaining({
          attempt: 1,
          outcome: 'interrupted',
          worker_id: worker.workerId,
          error: null,
        }),
      ]);
    }
    const { rows: epochs } = await db.pool.query<{ claim_epoch: number; rescues: number }>(
      'SELECT claim_epoch, rescues FROM ix_jobs WHERE job_id = ANY($1)',
      [slow],
    );
    expect(epochs).toEqual(slow.map(() => ({ claim_epoch: 1, rescues: 0 })));
    for (const id of queued)
      expect(await jobGet(db.pool, id)).toMatchObject({ status: 'pending', attempts: 0 });
    const { rows } = await db.pool.query(
      'SELECT (SELECT count(*) FROM ix_job_leases)::int AS leases, (SELECT count(*) FROM ix_workers)::int AS workers',
    );
    expect(rows[0]).toEqual({ leases: 0, workers: 0 });
  });

  it('a worker beats once to register, then an interval later: not again at once', async () => {
    let beats = 0;
    const pool = new Proxy(db.pool, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (property !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (config: string | pg.QueryConfig, values?: unknown[]) => {
          const text = typeof config === 'string' ? config : config.text;
          if (text.includes('INSERT INTO ix_workers')) beats += 1;
          return target.query(config, values);
        };
      },
    });
    const worker = makeWorker({ pool, url: db.url }, echoPipeline, { heartbeatIntervalSeconds: 1 });
    await worker.start();
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(beats).toBe(1);
      await eventually(async () => beats === 2, 'the next beat, an interval later', 2_000);
    } finally {
      await worker.stop();
    }
  });

  it('an idle worker picks a new job up through NOTIFY, not the poll', async () => {
    const worker = makeWorker(db, echoPipeline, { pollIntervalMs: 600_000 });
    await worker.start();
    try {
      await new Promise((r) => setTimeout(r, 200)); // idle: the first claim found nothing
      const submitted = Date.now();
      const [id] = await submitMany(db.pool, 1);
      await eventually(async () => (await jobGet(db.pool, id!))?.status === 'done', 'the job is done', 3_000);
      expect(Date.now() - submitted).toBeLessThan(3_000);
    } finally {
      await worker.stop();
    }
  });

  it('recovers when PostgreSQL terminates its connections, and goes on claiming', async () => {
    const worker = makeWorker(db, echoPipeline, { pollIntervalMs: 600_000 });
    await worker.start();
    try {
      const [before] = await submitMany(db.pool, 1);
      await eventually(async () => (await jobGet(db.pool, before!))?.status === 'done', 'first job done');
      const { rowCount } = await db.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      expect(rowCount).toBeGreaterThan(0);
      // The listener reconnects and claims once on reconnect; a job submitted now is found
      // through the new LISTEN (the poll is ten minutes away).
      await new Promise((r) => setTimeout(r, 500));
      const [after] = await submitMany(db.pool, 1);
      await eventually(
        async () => (await jobGet(db.pool, after!))?.status === 'done',
        'job after the loss done',
        10_000,
      );
    } finally {
      await worker.stop();
    }
  });
});
