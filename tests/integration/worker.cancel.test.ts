import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Job, RequestIX } from '../../src/contracts/index.js';
import {
  CANCEL_CHANNEL,
  JobFinishedError,
  jobCancel,
  jobClaimMany,
  jobGet,
  jobStartMany,
  workerHeartbeat,
} from '../../src/store/index.js';
import { type Pipeline, Sweeper } from '../../src/worker/index.js';
import { heldJobCount, useTestDatabase } from '../support/db.js';
import { FIRST_CALLBACK_URL, makeRequest, success } from '../support/factories.js';
import { claimNextPending, finishJob, insertPending } from '../support/jobs.js';
import { eventually, makeWorker, silentLogger, submitMany, workerConfig } from '../support/worker.js';

const db = useTestDatabase();
const WORKER = '00000000-0000-7000-8000-0000000000cc';

async function cancel(pool: pg.Pool, jobId: string): Promise<Job | null> {
  const client = await pool.connect();
  try {
    return await jobCancel(client, jobId);
  } finally {
    client.release();
  }
}

/** A pipeline that runs until its signal aborts; records when that happened, per request id. */
function abortablePipeline(): { pipeline: Pipeline; calls: string[]; abortedAt: Map<string, number> } {
  const calls: string[] = [];
  const abortedAt = new Map<string, number>();
  const pipeline: Pipeline = (request: RequestIX, ctx) =>
    new Promise((resolve) => {
      calls.push(request.request_id);
      ctx.signal.addEventListener('abort', () => {
        abortedAt.set(request.request_id, Date.now());
        resolve({ error: 'aborted' });
      });
    });
  return { pipeline, calls, abortedAt };
}

describe('cancelling a pending job', () => {
  it('a queued job ends cancelled at once, and no worker ever calls its pipeline', async () => {
    const [id] = await submitMany(db.pool, 1);
    const cancelled = await cancel(db.pool, id!);
    expect(cancelled).toMatchObject({
      status: 'cancelled',
      response: { error: 'cancelled', result: null },
      started_at: null,
    });
    expect(cancelled?.finished_at).not.toBeNull();
    const { pipeline, calls } = abortablePipeline();
    expect(await makeWorker(db, pipeline).runOnce()).toBe(0);
    expect(calls).toEqual([]);
    // Out of the queue at once: no claim takes it, nor leaves a lease behind for it.
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_job_queue');
    expect(rows[0]!.n).toBe(0);
    expect(await heldJobCount(db.pool)).toBe(0);
    expect(await jobGet(db.pool, id!)).toMatchObject({ status: 'cancelled' });
  });

  it('a claimed but unstarted job ends cancelled, its lease gone; the stale claim can neither start nor end it', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    const [claim] = await jobClaimMany(db.pool, { limit: 1, workerId: WORKER, startNow: 0 });
    expect(claim?.started).toBe(false);
    expect((await cancel(db.pool, job.job_id))?.status).toBe('cancelled');
    expect(await heldJobCount(db.pool)).toBe(0);
    expect((await jobStartMany(db.pool, WORKER, [claim!])).size).toBe(0);
    expect(await finishJob(db.pool, job.job_id, 0, success(job.ix_id))).toBe(false);
    expect(await jobGet(db.pool, job.job_id)).toMatchObject({ status: 'cancelled' });
  });

  it('a worker holding the unstarted claim lets it go when told, without calling its pipeline', async () => {
    const ids = await submitMany(db.pool, 2);
    const { pipeline, calls } = abortablePipeline();
    // One slot, one prefetched: the second job waits in the buffer, unstarted.
    const worker = makeWorker(db, pipeline, { concurrency: 1, prefetch: 1, shutdownGraceSeconds: 1 });
    await worker.start();
    try {
      await eventually(async () => worker.heldCount === 2, 'the worker holds both jobs');
      const jobs = await Promise.all(ids.map((id) => jobGet(db.pool, id)));
      const buffered = jobs.find((job) => job?.status === 'pending')!;
      expect(calls).toHaveLength(1);
      await cancel(db.pool, buffered.job_id);
      await eventually(async () => worker.heldCount === 1, 'the worker let the cancelled claim go');
      expect(calls).not.toContain(buffered.request_id);
    } finally {
      await worker.stop();
    }
  });
});

describe('cancelling a running job', () => {
  it('is marked; its worker, told by NOTIFY, aborts the pipeline within 1 s and records cancelled', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), FIRST_CALLBACK_URL);
    const { pipeline, calls, abortedAt } = abortablePipeline();
    // Heartbeats far apart: only the notification can tell the worker in time.
    const worker = makeWorker(db, pipeline, { heartbeatIntervalSeconds: 60 });
    await worker.start();
    try {
      await eventually(async () => calls.length === 1, 'the pipeline runs');
      const askedAt = Date.now();
      expect(await cancel(db.pool, job.job_id)).toMatchObject({ status: 'running' });
      await eventually(async () => abortedAt.has(job.request_id), 'the pipeline is aborted', 1_000);
      expect(abortedAt.get(job.request_id)! - askedAt).toBeLessThan(1_000);
      await eventually(async () => (await jobGet(db.pool, job.job_id))?.status === 'cancelled', 'cancelled');
    } finally {
      await worker.stop();
    }
    const final = await jobGet(db.pool, job.job_id);
    expect(final).toMatchObject({ status: 'cancelled', response: { error: 'cancelled', result: null } });
    expect(final?.started_at).not.toBeNull();
    expect(final?.attempt_history).toEqual([
      expect.objectContaining({
        attempt: 1,
        outcome: 'cancelled',
        error: 'cancelled',
        worker_id: worker.workerId,
      }),
    ]);
    // Its callback is queued like any other outcome's.
    const { rows } = await db.pool.query('SELECT job_id FROM ix_callback_queue');
    expect(rows).toEqual([{ job_id: job.job_id }]);
  });

  it('with no notification (a worker that cannot LISTEN), within one heartbeat interval', async () => {
    const [id] = await submitMany(db.pool, 1);
    const { pipeline, calls, abortedAt } = abortablePipeline();
    // A LISTEN connection to a port nothing serves: the worker claims by polling, and only its
    // heartbeat can tell it of the cancellation.
    const worker = makeWorker({ pool: db.pool, url: 'postgres://postgres@127.0.0.1:1/nowhere' }, pipeline, {
      heartbeatIntervalSeconds: 1,
    });
    await worker.start();
    try {
      await eventually(async () => calls.length === 1, 'the pipeline runs');
      const askedAt = Date.now();
      await cancel(db.pool, id!);
      await eventually(async () => abortedAt.size === 1, 'the pipeline is aborted', 2_000);
      expect([...abortedAt.values()][0]! - askedAt).toBeLessThanOrEqual(1_500);
      await eventually(async () => (await jobGet(db.pool, id!))?.status === 'cancelled', 'cancelled');
    } finally {
      await worker.stop();
    }
  });

  it('the heartbeat answers with the worker’s own cancel-requested running jobs only', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await insertPending(db.pool, makeRequest(), null);
    await workerHeartbeat(db.pool, WORKER);
    await claimNextPending(db.pool, WORKER);
    await claimNextPending(db.pool, WORKER);
    expect((await workerHeartbeat(db.pool, WORKER)).cancelled).toEqual([]);
    await cancel(db.pool, job.job_id);
    expect((await workerHeartbeat(db.pool, WORKER)).cancelled).toEqual([job.job_id]);
    expect((await workerHeartbeat(db.pool, '00000000-0000-7000-8000-0000000000ee')).cancelled).toEqual([]);
  });

  it('a success recorded first stands: the cancellation then finds the job done', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await claimNextPending(db.pool, WORKER);
    expect(await finishJob(db.pool, job.job_id, 0, success(job.ix_id))).toBe(true);
    const refused = await cancel(db.pool, job.job_id).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(JobFinishedError);
    expect((refused as JobFinishedError).job).toMatchObject({ status: 'done' });
  });

  it('its worker died: the sweep ends it cancelled instead of requeueing it, its callback queued', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), FIRST_CALLBACK_URL);
    await workerHeartbeat(db.pool, WORKER);
    await claimNextPending(db.pool, WORKER);
    await cancel(db.pool, job.job_id);
    const sweeper = new Sweeper(db.pool, workerConfig({ heartbeatTimeoutSeconds: 30 }), silentLogger);
    const result = await sweeper.runOnce(new Date(Date.now() + 120_000));
    expect(result.cancelled).toEqual([job.job_id]);
    const final = await jobGet(db.pool, job.job_id);
    expect(final).toMatchObject({ status: 'cancelled', attempts: 0, response: { error: 'cancelled' } });
    // The run ended with its worker, not through it: the history says so.
    expect(final?.attempt_history).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'worker_lost', worker_id: WORKER }),
    ]);
    expect(await heldJobCount(db.pool)).toBe(0);
    const { rows } = await db.pool.query('SELECT job_id FROM ix_callback_queue');
    expect(rows).toEqual([{ job_id: job.job_id }]);
  });

  it('notifies on its channel, carrying the job id', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await claimNextPending(db.pool, WORKER);
    const listener = await db.pool.connect();
    try {
      const told = new Promise<string | undefined>((resolve) =>
        listener.on('notification', (n) => resolve(n.payload)),
      );
      await listener.query(`LISTEN ${CANCEL_CHANNEL}`);
      await cancel(db.pool, job.job_id);
      expect(await told).toBe(job.job_id);
    } finally {
      await listener.query(`UNLISTEN ${CANCEL_CHANNEL}`);
      listener.release();
    }
  });
});
