/**
 * One lease per claim: what its entries hold, who deletes it, and that an entry whose job moved on
 * (a retry, a hand-back) can never take the job back from the claim that holds it now.
 */
import { describe, expect, it } from 'vitest';
import {
  jobClaimMany,
  jobCompleteMany,
  jobGet,
  jobSweepOrphans,
  outcomeKey,
  workerHeartbeat,
} from '../../src/store/index.js';
import { heldJobCount, useTestDatabase } from '../support/db.js';
import { failure, makeRequest, success } from '../support/factories.js';
import { doneOutcome, insertPending } from '../support/jobs.js';

const db = useTestDatabase();
const SILENT = '00000000-0000-7000-8000-00000000000a';
const LIVE = '00000000-0000-7000-8000-00000000000b';

async function leases(): Promise<{ worker_id: string; jobs: number }[]> {
  const { rows } = await db.pool.query<{ worker_id: string; jobs: number }>(
    'SELECT worker_id, cardinality(job_ids) AS jobs FROM ix_job_leases ORDER BY lease_id',
  );
  return rows;
}

/** The worker's heartbeat an hour old: the sweep's heartbeat rule takes its leases. */
async function silence(workerId: string): Promise<void> {
  await db.pool.query(`UPDATE ix_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = $1`, [
    workerId,
  ]);
}

const sweep = () => jobSweepOrphans(db.pool, { maxRunningSeconds: 3600, heartbeatTimeoutSeconds: 60 });

describe('leases', () => {
  it('a claim writes one lease for all its jobs; it holds them until each has ended, and its holder deletes it', async () => {
    for (let i = 0; i < 5; i++) await insertPending(db.pool, makeRequest(), null);
    const claimed = await jobClaimMany(db.pool, { limit: 5, workerId: LIVE, startNow: 2 });
    expect(claimed).toHaveLength(5);
    expect(new Set(claimed.map((c) => c.leaseId)).size).toBe(1);
    expect(await leases()).toEqual([{ worker_id: LIVE, jobs: 5 }]);
    expect(await heldJobCount(db.pool)).toBe(5);

    // Unstarted and started jobs alike, the unstarted ones by their lease.
    const applied = await jobCompleteMany(db.pool, claimed.slice(0, 3).map(doneOutcome));
    expect(applied.size).toBe(3);
    expect(await heldJobCount(db.pool)).toBe(2);
    expect(await leases()).toHaveLength(1);

    await jobCompleteMany(db.pool, claimed.slice(3).map(doneOutcome), { endedLeases: [claimed[0]!.leaseId] });
    expect(await heldJobCount(db.pool)).toBe(0);
    expect(await leases()).toEqual([]);
  });

  it("an unstarted job's outcome needs its claim's lease", async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    const [claim] = await jobClaimMany(db.pool, { limit: 1, workerId: LIVE, startNow: 0 });
    const outcome = { jobId: job.job_id, attempt: 0, response: success(job.ix_id), status: 'done' as const };
    expect((await jobCompleteMany(db.pool, [outcome])).size).toBe(0);
    expect((await jobCompleteMany(db.pool, [{ ...outcome, leaseId: claim!.leaseId }])).size).toBe(1);
  });

  it("a silent worker's stale entry does not take back a job another worker claimed again", async () => {
    await workerHeartbeat(db.pool, SILENT);
    await workerHeartbeat(db.pool, LIVE);
    const { job } = await insertPending(db.pool, makeRequest(), null);
    const [first] = await jobClaimMany(db.pool, { limit: 1, workerId: SILENT, startNow: 1 });
    // Its run fails retryably: back to the queue at attempt 1, its lease left behind.
    const retry = { jobId: job.job_id, attempt: 0, status: 'retry' as const, retryInSeconds: 0 };
    await jobCompleteMany(db.pool, [
      { ...retry, leaseId: first!.leaseId, response: failure(job.ix_id, 'busy') },
    ]);
    const [second] = await jobClaimMany(db.pool, { limit: 1, workerId: LIVE, startNow: 0 });
    expect(second!.job).toMatchObject({ job_id: job.job_id, attempts: 1 });
    expect(await leases()).toEqual([
      { worker_id: SILENT, jobs: 1 },
      { worker_id: LIVE, jobs: 1 },
    ]);

    await silence(SILENT);
    expect(await sweep()).toEqual({ requeued: [], returned: [], abandoned: [], cancelled: [] });
    // The silent worker's lease went; the job is still the live worker's claim, unmoved.
    expect(await leases()).toEqual([{ worker_id: LIVE, jobs: 1 }]);
    expect(await heldJobCount(db.pool)).toBe(1);
    const { rows } = await db.pool.query('SELECT claim_epoch FROM ix_jobs WHERE job_id = $1', [job.job_id]);
    expect(rows).toEqual([{ claim_epoch: 0 }]);
    const done = { jobId: job.job_id, attempt: 1, leaseId: second!.leaseId, status: 'done' as const };
    const applied = await jobCompleteMany(db.pool, [{ ...done, response: success(job.ix_id) }]);
    expect(applied.get(outcomeKey(job.job_id, 1))).toBe('done');
  });

  it("the sweep rescues a silent worker's jobs, started or not, and deletes its lease with them", async () => {
    await workerHeartbeat(db.pool, SILENT);
    for (let i = 0; i < 3; i++) await insertPending(db.pool, makeRequest(), null);
    const claimed = await jobClaimMany(db.pool, { limit: 3, workerId: SILENT, startNow: 1 });
    await silence(SILENT);
    const swept = await sweep();
    expect(swept.requeued).toEqual([claimed[0]!.job.job_id]);
    expect(new Set(swept.returned)).toEqual(new Set(claimed.slice(1).map((c) => c.job.job_id)));
    expect(await leases()).toEqual([]);
    expect(await heldJobCount(db.pool)).toBe(0);
    for (const c of claimed) expect((await jobGet(db.pool, c.job.job_id))?.status).toBe('pending');
  });

  it("a live worker's lease stays through the sweep, even once it holds nothing", async () => {
    await workerHeartbeat(db.pool, LIVE);
    const { job } = await insertPending(db.pool, makeRequest(), null);
    const [claim] = await jobClaimMany(db.pool, { limit: 1, workerId: LIVE, startNow: 1 });
    await jobCompleteMany(db.pool, [
      {
        jobId: job.job_id,
        attempt: 0,
        leaseId: claim!.leaseId,
        response: success(job.ix_id),
        status: 'done',
      },
    ]);
    await sweep();
    expect(await leases()).toEqual([{ worker_id: LIVE, jobs: 1 }]);
    expect(await heldJobCount(db.pool)).toBe(0);
  });
});
