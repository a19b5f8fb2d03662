/**
 * A worker's connections plan each statement once (generic plans) and keep the plan for their
 * life, so a plan made while ix_jobs was small must not read ix_jobs whole once it is large. Each
 * statement a worker or deliverer runs on its jobs is planned here beside 300 rows with their
 * statistics, then run beside 20,000 more: the index entries and rows it reads from ix_jobs stay
 * within a few of the jobs it touches (a plan that hashed ix_jobs read every row, every time).
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Claimed,
  callbackClaimDue,
  callbackRecordAttempt,
  createPool,
  jobClaimMany,
  jobCompleteMany,
  jobInsertMany,
  jobProgressMany,
  jobReleaseMany,
  jobStartMany,
  jobSweepOrphans,
  workerHeartbeat,
} from '../../src/store/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { doneOutcome } from '../support/jobs.js';

const db = useTestDatabase({ truncate: false });
const WORKER = '00000000-0000-7000-8000-0000000000ee';
let worker: pg.Pool;
let connection: pg.PoolClient;

async function submit(jobs: number, callbackUrl: string | null = null): Promise<void> {
  for (let done = 0; done < jobs; done += 1000) {
    const count = Math.min(1000, jobs - done);
    await jobInsertMany(
      db.pool,
      Array.from({ length: count }, () => ({ request: makeRequest(), callbackUrl })),
    );
  }
}

/** Rows and index entries read from ix_jobs while `work` ran on the worker's connection. */
async function ixJobsReads(work: () => Promise<unknown>): Promise<number> {
  const read = async () => {
    await connection.query('SELECT pg_stat_force_next_flush()');
    const { rows } = await db.pool.query<{ n: string }>(
      `SELECT pg_stat_clear_snapshot(), (SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
         + (SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname = 'ix_jobs')
       FROM pg_stat_user_tables WHERE relname = 'ix_jobs') AS n`,
    );
    return Number(rows[0]!.n);
  };
  const before = await read();
  await work();
  return (await read()) - before;
}

describe('statements planned beside a small ix_jobs', () => {
  const claims: Claimed[] = [];

  beforeAll(async () => {
    worker = createPool(db.url, { max: 1, genericPlans: true });
    connection = await worker.connect();
    await workerHeartbeat(connection, WORKER);
    // Planned with 300 jobs and their statistics: each statement runs once, small.
    await submit(300, 'http://127.0.0.1:9/callback');
    await db.pool.query('ANALYZE');
    const first = await jobClaimMany(connection, { limit: 6, workerId: WORKER, startNow: 0 });
    await jobStartMany(connection, WORKER, first.slice(0, 2));
    await jobProgressMany(
      connection,
      first
        .slice(0, 1)
        .map((c) => ({ jobId: c.job.job_id, attempt: 0, claimEpoch: 0, report: { percent: 1 } })),
    );
    await jobCompleteMany(connection, first.slice(0, 2).map(doneOutcome), { workerId: WORKER });
    await jobReleaseMany(
      connection,
      first.slice(2, 3).map((c) => ({ jobId: c.job.job_id, attempt: 0, claimEpoch: 0, started: false })),
    );
    await jobSweepOrphans(connection, { maxRunningSeconds: 3600, heartbeatTimeoutSeconds: 60 });
    const [delivery] = await callbackClaimDue(connection, 5, { leaseSeconds: 60 });
    await callbackRecordAttempt(connection, delivery!.job.job_id, delivery!.attempt, {
      statusCode: 200,
      error: null,
      next: 'delivered',
    });
    // Then the table grows past what the plans were made for.
    await submit(20_000, 'http://127.0.0.1:9/callback');
    claims.push(...(await jobClaimMany(connection, { limit: 200, workerId: WORKER, startNow: 0 })));
  }, 120_000);

  afterAll(async () => {
    connection?.release();
    await worker?.end();
  });

  // Each statement touches at most 100 jobs; a plan that reads ix_jobs whole reads 20,000.
  const WITHIN = 1_000;

  it("claiming one client's jobs reads only those jobs", async () => {
    expect(
      await ixJobsReads(() => jobClaimMany(connection, { limit: 50, workerId: WORKER, startNow: 0 })),
    ).toBeLessThan(WITHIN);
  });

  it('marking claimed jobs started reads only those jobs', async () => {
    expect(await ixJobsReads(() => jobStartMany(connection, WORKER, claims.slice(0, 100)))).toBeLessThan(
      WITHIN,
    );
  });

  it('recording progress reads only those jobs', async () => {
    const updates = claims.slice(0, 100).map((c) => ({
      jobId: c.job.job_id,
      attempt: 0,
      claimEpoch: 0,
      report: { percent: 50 },
    }));
    expect(await ixJobsReads(() => jobProgressMany(connection, updates))).toBeLessThan(WITHIN);
  });

  it('recording outcomes reads only those jobs', async () => {
    const applied = await ixJobsReads(() =>
      jobCompleteMany(connection, claims.slice(0, 100).map(doneOutcome), { workerId: WORKER }),
    );
    expect(applied).toBeLessThan(WITHIN);
  });

  it('the heartbeat reads only the jobs its leases hold', async () => {
    expect(await ixJobsReads(() => workerHeartbeat(connection, WORKER))).toBeLessThan(WITHIN);
  });

  it('the sweep reads only the jobs leases hold', async () => {
    const swept = await ixJobsReads(() =>
      jobSweepOrphans(connection, { maxRunningSeconds: 3600, heartbeatTimeoutSeconds: 60 }),
    );
    expect(swept).toBeLessThan(WITHIN);
  });

  it('handing claims back reads only those jobs', async () => {
    const held = claims
      .slice(100, 200)
      .map((c) => ({ jobId: c.job.job_id, attempt: 0, claimEpoch: 0, started: false }));
    expect(await ixJobsReads(() => jobReleaseMany(connection, held))).toBeLessThan(WITHIN);
  });

  it('claiming and recording deliveries reads only those jobs', async () => {
    let delivery: Awaited<ReturnType<typeof callbackClaimDue>> = [];
    expect(
      await ixJobsReads(async () => {
        delivery = await callbackClaimDue(connection, 100, { leaseSeconds: 60 });
      }),
    ).toBeLessThan(WITHIN);
    expect(delivery.length).toBeGreaterThan(0);
    const [first] = delivery;
    const recorded = await ixJobsReads(() =>
      callbackRecordAttempt(connection, first!.job.job_id, first!.attempt, {
        statusCode: 200,
        error: null,
        next: 'delivered',
      }),
    );
    expect(recorded).toBeLessThan(WITHIN);
  });
});
