import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { jobGet, jobNotifyPending } from '../../src/store/index.js';
import { CLAIM_SQL, ONE_CLIENT_CLAIM_SQL } from '../../src/store/jobs/claim.js';
import { QUIET_MS } from '../../src/worker/claim-wakes.js';
import { type Pipeline, Worker } from '../../src/worker/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { insertPending } from '../support/jobs.js';
import { eventually, makeWorker, silentLogger, statusCounts, workerConfig } from '../support/worker.js';

const db = useTestDatabase();

interface Claims {
  made: number;
  empty: number;
  /** Statements that recorded outcomes. */
  completions: number;
}

/** The test database's pool as a worker sees it, counting the claims and completions made through it. */
function countingClaims(pool: pg.Pool, claims: Claims): pg.Pool {
  return new Proxy(pool, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== 'query') return typeof value === 'function' ? value.bind(target) : value;
      return async (config: pg.QueryConfig, values?: unknown[]) => {
        const result = await target.query(config, values);
        // A claim is either statement; a one-client claim that cannot serve is followed by the
        // fair one, and only that one counts.
        const alone = config?.text === ONE_CLIENT_CLAIM_SQL;
        if (config?.text === CLAIM_SQL || (alone && result.rows[0]?.alone)) {
          claims.made += 1;
          if (!result.rows.some((row) => row.job_id)) claims.empty += 1;
        }
        if (config?.name === 'ix_job_complete_many') claims.completions += 1;
        return result;
      };
    },
  });
}

/** Submits `jobs` one at a time, each announced, `everyMs` apart; resolves with the time it took. */
async function trickle(pool: pg.Pool, jobs: number, everyMs: number): Promise<number> {
  const startedAt = Date.now();
  for (let i = 0; i < jobs; i++) {
    await insertPending(pool, makeRequest(), null);
    await jobNotifyPending(pool);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return Date.now() - startedAt;
}

describe('workers hearing every notification', () => {
  it('three idle workers do not all claim for every job: one that found nothing answers again only after a quiet', async () => {
    const claims: Claims = { made: 0, empty: 0, completions: 0 };
    // Jobs that run until the end of the test: no slot frees up, so every claim answers a notification.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const pipeline: Pipeline = async () => {
      await released;
      return { result: { ok: true } };
    };
    const workers: Worker[] = [1, 2, 3].map(() =>
      makeWorker({ pool: countingClaims(db.pool, claims), url: db.url }, pipeline, {
        concurrency: 100,
        prefetch: 0,
        pollIntervalMs: 60_000,
      }),
    );
    try {
      await Promise.all(workers.map((w) => w.start()));
      await eventually(async () => claims.made >= 3, 'each worker made its first claim');
      const before = { ...claims };
      const jobs = 60;
      const elapsedMs = await trickle(db.pool, jobs, 2);
      await eventually(async () => (await statusCounts(db.pool)).running === jobs, 'every job running');
      const empty = claims.empty - before.empty;
      // Quiet after losing, each worker finds nothing at most once per QUIET_MS, and once more as
      // the quiet begins: ~30 here in ~250 ms. Answering every notification, the two workers
      // that lose each race would find nothing twice a job (112 of 120 measured without the gate).
      expect(empty).toBeLessThanOrEqual(3 * (Math.ceil(elapsedMs / QUIET_MS) + 2));
    } finally {
      release();
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 60_000);
});

describe('a worker whose last claim found nothing', () => {
  /** One worker, started, polling only once a minute: whatever runs sooner was asked for. */
  function lonelyWorker(pipeline: Pipeline, defaultMaxRunning: number | null = null): Worker {
    return new Worker({
      pool: db.pool,
      connectionString: db.url,
      config: workerConfig({ concurrency: 4, prefetch: 0, pollIntervalMs: 60_000, retryBaseSeconds: 0.05 }),
      pipeline,
      logger: silentLogger,
      defaultMaxRunning,
    });
  }

  it('runs a retry it queued itself once due, though no notification announces it', async () => {
    let retryRuns = 0;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const worker = lonelyWorker(async (request) => {
      if ((request.input as { kind: string }).kind === 'quick') {
        await sleep(20);
        return { result: { ok: true } };
      }
      retryRuns += 1;
      // Fails once, late: the quick job's end made the worker claim, and find nothing, before.
      if (retryRuns === 1) {
        await sleep(300);
        return { error: 'busy', retryable: true };
      }
      return { result: { ok: true } };
    });
    await insertPending(db.pool, makeRequest({ input: { kind: 'quick' } }), null);
    const { job } = await insertPending(db.pool, makeRequest({ input: { kind: 'retry' } }), null);
    try {
      await worker.start();
      await eventually(
        async () => (await jobGet(db.pool, job.job_id))?.status === 'done',
        'the retried job done',
        5_000,
      );
      expect(retryRuns).toBe(2);
    } finally {
      await worker.stop();
    }
  }, 20_000);

  it('claims the next job of a client at its max_running as soon as one of its jobs ends', async () => {
    const worker = lonelyWorker(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { result: { ok: true } };
    }, 1);
    for (let i = 0; i < 3; i++) await insertPending(db.pool, makeRequest(), null);
    try {
      await worker.start();
      await eventually(
        async () => (await statusCounts(db.pool)).done === 3,
        'all three done, one at a time',
        5_000,
      );
    } finally {
      await worker.stop();
    }
  }, 20_000);
});

describe('workers paced by IX_WORKER_BATCH_INTERVAL_MS', () => {
  it('two workers under a trickle claim and record outcomes about once an interval between them, not once a job', async () => {
    const claims: Claims = { made: 0, empty: 0, completions: 0 };
    const intervalMs = 40;
    const workers: Worker[] = [1, 2].map(() =>
      makeWorker(
        { pool: countingClaims(db.pool, claims), url: db.url },
        async () => ({ result: { ok: true } }),
        {
          concurrency: 100,
          prefetch: 0,
          pollIntervalMs: 60_000,
          batchIntervalMs: intervalMs,
          heartbeatIntervalSeconds: 1,
        },
      ),
    );
    try {
      await Promise.all(workers.map((w) => w.start()));
      // The first to register counted itself alone: its next beat sees both.
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      const before = { ...claims };
      const jobs = 100;
      const elapsedMs = await trickle(db.pool, jobs, 4);
      await eventually(async () => (await statusCounts(db.pool)).done === jobs, 'every job done');
      const made = claims.made - before.made;
      const completions = claims.completions - before.completions;
      // Each worker starts a claim at most once per 2 × 40 ms (the interval times the two live
      // workers), plus the one in flight as the trickle began and the one that found the last
      // jobs; the same for outcomes (20 and 18 in one run). Unpaced, the two made 163 claims and
      // 168 completions here; each paced by 40 ms alone, not 80, 42 and 39.
      const bound = 2 * (Math.ceil(elapsedMs / (2 * intervalMs)) + 2);
      expect(made).toBeLessThanOrEqual(bound);
      expect(completions).toBeLessThanOrEqual(bound);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 60_000);

  it('a worker whose paced claim found nothing takes the next job at once, not after another pace', async () => {
    const worker = makeWorker(db, async () => ({ result: { ok: true } }), {
      concurrency: 4,
      prefetch: 0,
      pollIntervalMs: 60_000,
      batchIntervalMs: 200,
    });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      await worker.start();
      const firstAt = Date.now();
      const first = await insertPending(db.pool, makeRequest(), null);
      await jobNotifyPending(db.pool);
      await eventually(
        async () => (await jobGet(db.pool, first.job.job_id))?.status === 'done',
        'the first job done',
      );
      // Its end asked for a claim, made once the pace (200 ms) was over, which found nothing.
      await sleep(firstAt + 260 - Date.now());
      const second = await insertPending(db.pool, makeRequest(), null);
      await jobNotifyPending(db.pool);
      await eventually(
        async () => (await jobGet(db.pool, second.job.job_id))?.status === 'done',
        'the second job done',
      );
      const job = (await jobGet(db.pool, second.job.job_id))!;
      // Paced again after the empty claim, it waited until ~400 ms: ~140 ms.
      expect(Date.parse(job.started_at!) - Date.parse(job.created_at)).toBeLessThan(70);
    } finally {
      await worker.stop();
    }
  }, 20_000);
});
