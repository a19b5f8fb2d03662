/** Cancelling jobs through the API, with workers on a real database. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IxApiError, IxClient } from '../../src/client/index.js';
import { type Job, JobSchema, type RequestIX } from '../../src/contracts/index.js';
import { jobGet, jobNotifyPending } from '../../src/store/index.js';
import { sleep } from '../../src/time.js';
import type { Pipeline } from '../../src/worker/index.js';
import { buildTestApi } from '../support/api.js';
import { makeDeliverer } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest, success } from '../support/factories.js';
import { claimNextPending, finishJob, insertPending } from '../support/jobs.js';
import { type Receiver, useReceiver } from '../support/receiver.js';
import { eventually, makeWorker } from '../support/worker.js';

const db = useTestDatabase();
const receiverOfTest = useReceiver();
let receiver: Receiver;
beforeEach(() => {
  receiver = receiverOfTest.current;
});
const KEY_A = 'key-a-0123456789abcdef0123456789';
const KEY_B = 'key-b-0123456789abcdef0123456789';
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildTestApi(db.pool, {
    IX_API_KEYS: `client-a=${KEY_A},client-b=${KEY_B}`,
    IX_API_DEADLINE_SECONDS: '2',
  });
});
afterAll(async () => {
  await app?.close();
});

const asA = { authorization: `Bearer ${KEY_A}` };
const asB = { authorization: `Bearer ${KEY_B}` };

function cancel(jobId: string, headers = asA) {
  return app.inject({ method: 'POST', url: `/jobs/${jobId}/cancel`, headers });
}

async function pendingOfA(callbackUrl: string | null = null): Promise<Job> {
  return (await insertPending(db.pool, makeRequest({ ix_client_id: 'client-a' }), callbackUrl)).job;
}

/** Runs until aborted (then fails), or, with `ignoreAbort`, forever. */
function hangingPipeline(ignoreAbort = false): { pipeline: Pipeline; calls: string[] } {
  const calls: string[] = [];
  const pipeline: Pipeline = (request: RequestIX, ctx) =>
    new Promise((resolve) => {
      calls.push(request.request_id);
      if (!ignoreAbort) ctx.signal.addEventListener('abort', () => resolve({ error: 'aborted' }));
    });
  return { pipeline, calls };
}

describe('POST /jobs/{job_id}/cancel', () => {
  it('a pending job: 200, cancelled at once; twice: 200 again, unchanged', async () => {
    const job = await pendingOfA();
    const first = await cancel(job.job_id);
    expect(first.statusCode).toBe(200);
    const cancelled = JobSchema.parse(first.json());
    expect(cancelled).toMatchObject({ status: 'cancelled', response: { error: 'cancelled', result: null } });
    const again = await cancel(job.job_id);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(cancelled);
    expect(await jobGet(db.pool, job.job_id)).toEqual(cancelled);
  });

  it('another client’s job, or none: 404, and the job is left as it was', async () => {
    const job = await pendingOfA();
    const response = await cancel(job.job_id, asB);
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ error: { code: 'not_found' } });
    expect((await cancel('00000000-0000-7000-8000-000000000000')).statusCode).toBe(404);
    expect((await jobGet(db.pool, job.job_id))?.status).toBe('pending');
  });

  it('a finished job: 409 job_finished, with the job as it stands in error.job', async () => {
    const job = await pendingOfA();
    await claimNextPending(db.pool);
    await finishJob(db.pool, job.job_id, 0, success(job.ix_id));
    const response = await cancel(job.job_id);
    expect(response.statusCode).toBe(409);
    const body = response.json() as { error: { code: string; job: Job; job_id: string } };
    expect(body.error.code).toBe('job_finished');
    expect(body.error.job_id).toBe(job.job_id);
    expect(body.error.job).toEqual(await jobGet(db.pool, job.job_id));
    expect(body.error.job.status).toBe('done');
  });

  it('a running job: 200 once its worker has aborted it and recorded it cancelled', async () => {
    const job = await pendingOfA();
    const { pipeline, calls } = hangingPipeline();
    const worker = makeWorker(db, pipeline, { heartbeatIntervalSeconds: 60 });
    await worker.start();
    try {
      await eventually(async () => calls.length === 1, 'the pipeline runs');
      const response = await cancel(job.job_id);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ status: 'cancelled' });
    } finally {
      await worker.stop();
    }
  });

  it('a running job whose pipeline ignores its abort: 202, still running, asked to stop', async () => {
    const job = await pendingOfA();
    const { pipeline, calls } = hangingPipeline(true);
    const worker = makeWorker(db, pipeline, { shutdownGraceSeconds: 1 });
    await worker.start();
    try {
      await eventually(async () => calls.length === 1, 'the pipeline runs');
      const response = await cancel(job.job_id);
      expect(response.statusCode).toBe(202);
      expect(response.json()).toMatchObject({ status: 'running' });
    } finally {
      await worker.stop();
    }
    // Handed back at the stop: a job asked to stop ends cancelled rather than running again.
    expect((await jobGet(db.pool, job.job_id))?.status).toBe('cancelled');
  });

  it('cancel races completion, 50 times: exactly one outcome wins, and the answer is the committed one', async () => {
    // Each pipeline takes 30 ms and ignores its abort, and the cancel is sent 0–40 ms after it
    // began: the race is between the outcome the pipeline returns and the cancellation.
    const started = new Map<string, () => void>();
    const pipeline: Pipeline = (request: RequestIX) => {
      started.get(request.request_id)?.();
      return new Promise((resolve) => setTimeout(() => resolve({ result: { ok: true } }), 30));
    };
    const worker = makeWorker(db, pipeline, { heartbeatIntervalSeconds: 60 });
    await worker.start();
    const answers = new Map<number, number>();
    try {
      for (let i = 0; i < 50; i++) {
        const request = makeRequest({ ix_client_id: 'client-a' });
        const running = new Promise<void>((resolve) => started.set(request.request_id, resolve));
        const { job } = await insertPending(db.pool, request, null);
        await jobNotifyPending(db.pool);
        await running;
        await sleep(Math.random() * 40);
        const response = await cancel(job.job_id);
        answers.set(response.statusCode, (answers.get(response.statusCode) ?? 0) + 1);
        const stored = await jobGet(db.pool, job.job_id);
        if (response.statusCode === 200) {
          expect(stored).toEqual(response.json());
          expect(stored?.status).toBe('cancelled');
        } else {
          expect(response.statusCode).toBe(409);
          const answered = (response.json() as { error: { job: Job } }).error.job;
          expect(answered).toEqual(stored);
          expect(stored?.status).toBe('done');
        }
      }
    } finally {
      await worker.stop();
    }
    // Both sides won some of the races (about half each): the race was really run.
    expect(answers.get(200)).toBeGreaterThan(0);
    expect(answers.get(409)).toBeGreaterThan(0);
  }, 60_000);

  it('a cancelled job’s callback is delivered with status cancelled', async () => {
    const job = await pendingOfA(receiver.url());
    expect((await cancel(job.job_id)).statusCode).toBe(200);
    const deliverer = makeDeliverer({ pool: db.pool });
    expect(await deliverer.runOnce()).toBe(1);
    expect(receiver.requests).toHaveLength(1);
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({
      job_id: job.job_id,
      status: 'cancelled',
      response: { error: 'cancelled', result: null },
    });
    expect((await jobGet(db.pool, job.job_id))?.callback_status).toBe('delivered');
  });
});

describe('POST /jobs/cancel?client_id=…&request_id=…', () => {
  it('cancels the client’s own job by its correlation; another client’s: 404', async () => {
    const job = await pendingOfA();
    const url = `/jobs/cancel?client_id=client-a&request_id=${job.request_id}`;
    expect((await app.inject({ method: 'POST', url, headers: asB })).statusCode).toBe(404);
    const response = await app.inject({ method: 'POST', url, headers: asA });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ job_id: job.job_id, status: 'cancelled' });
  });
});

describe('IxClient.cancel', () => {
  it('cancels by id and by correlation; a job that had ended throws 409 job_finished carrying it', async () => {
    const served = await buildTestApi(db.pool, { IX_API_KEYS: `client-a=${KEY_A}` });
    const address = await served.listen({ host: '127.0.0.1', port: 0 });
    try {
      const client = new IxClient({ baseUrl: address, apiKey: KEY_A });
      const byId = await pendingOfA();
      expect(await client.cancel(byId.job_id)).toMatchObject({ job_id: byId.job_id, status: 'cancelled' });
      const byKey = await pendingOfA();
      expect(await client.cancelByCorrelation('client-a', byKey.request_id)).toMatchObject({
        job_id: byKey.job_id,
        status: 'cancelled',
      });
      expect(await client.waitFor(byKey.job_id, { timeoutMs: 1_000 })).toMatchObject({ status: 'cancelled' });

      const done = await pendingOfA();
      await claimNextPending(db.pool);
      await finishJob(db.pool, done.job_id, 0, success(done.ix_id));
      const refused = await client.cancel(done.job_id).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(IxApiError);
      expect(refused).toMatchObject({ status: 409, code: 'job_finished', jobId: done.job_id });
      expect((refused as IxApiError).job).toEqual(await jobGet(db.pool, done.job_id));
    } finally {
      await served.close();
    }
  });
});
