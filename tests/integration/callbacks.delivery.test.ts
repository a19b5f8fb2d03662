import { Webhook } from 'standardwebhooks';
import { beforeEach, describe, expect, it } from 'vitest';
import { jobGet } from '../../src/store/index.js';
import { makeDeliverer, newSecret, TestClock } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { finishedJobs } from '../support/jobs.js';
import { captureLogs } from '../support/logs.js';
import { type Receiver, useReceiver } from '../support/receiver.js';

const db = useTestDatabase();
const receiverOfTest = useReceiver();
let receiver: Receiver;
beforeEach(() => {
  receiver = receiverOfTest.current;
});

describe('callback delivery', () => {
  it('delivers a done and an error job once each, signed so standardwebhooks verifies, status unchanged', async () => {
    const secret = newSecret();
    const jobs = await finishedJobs(db.pool, receiver.url(), ['done', 'error']);
    const { logger, entries: lines } = captureLogs();
    const deliverer = makeDeliverer({ pool: db.pool, env: { IX_CALLBACK_SECRET: secret }, logger });
    expect(await deliverer.runOnce()).toBe(2);
    expect(await deliverer.runOnce()).toBe(0);

    expect(receiver.requests).toHaveLength(2);
    expect(receiver.counts()).toEqual(new Map(jobs.map((j) => [`msg_${j.job_id}`, 1])));
    const verifier = new Webhook(secret);
    for (const request of receiver.requests) {
      expect(request.headers['content-type']).toBe('application/json');
      const headers = {
        'webhook-id': String(request.headers['webhook-id']),
        'webhook-timestamp': String(request.headers['webhook-timestamp']),
        'webhook-signature': String(request.headers['webhook-signature']),
      };
      const payload = verifier.verify(request.body, headers) as { job_id: string; status: string };
      const job = jobs.find((j) => j.job_id === payload.job_id)!;
      expect(payload).toEqual(job);
    }
    for (const job of jobs) {
      const after = await jobGet(db.pool, job.job_id);
      expect(after).toMatchObject({
        status: job.status,
        response: job.response,
        callback_status: 'delivered',
      });
      expect(after?.callback_attempts).toEqual([
        { attempt: 1, at: expect.any(String), status_code: 204, error: null },
      ]);
    }
    const aboutJobs = lines().filter((l) => l.msg === 'callback delivered');
    expect(aboutJobs).toHaveLength(2);
    for (const line of aboutJobs) {
      expect(line).toMatchObject({ ix_id: expect.any(String), job_id: expect.any(String), attempt: 1 });
    }
  });

  it('sends unsigned without a secret, and warns about it once', async () => {
    await finishedJobs(db.pool, receiver.url(), ['done']);
    const { logger, entries: lines } = captureLogs();
    const deliverer = makeDeliverer({ pool: db.pool, logger });
    await deliverer.runOnce();
    await deliverer.runOnce();
    expect(receiver.requests[0]?.headers['webhook-signature']).toBeUndefined();
    expect(receiver.requests[0]?.headers['webhook-id']).toMatch(/^msg_/);
    expect(lines().filter((l) => String(l.msg).includes('unsigned'))).toHaveLength(1);
  });

  it('500, 500, then 200: delivered on the third attempt, same webhook-id, a fresh signature each time', async () => {
    const secret = newSecret();
    const clock = new TestClock();
    const [job] = await finishedJobs(db.pool, receiver.url(), ['done']);
    receiver.respond = (_r, n) => ({ status: n < 3 ? 500 : 200 });
    const deliverer = makeDeliverer({
      pool: db.pool,
      clock,
      env: { IX_CALLBACK_SECRET: secret, IX_CALLBACK_RETRY_SCHEDULE: '0,10,60' },
    });
    expect(await deliverer.runOnce()).toBe(1);
    clock.advance(5);
    expect(await deliverer.runOnce()).toBe(0); // the 10 s delay has not passed
    clock.advance(6);
    expect(await deliverer.runOnce()).toBe(1);
    clock.advance(30);
    expect(await deliverer.runOnce()).toBe(0);
    clock.advance(40);
    expect(await deliverer.runOnce()).toBe(1);

    expect(receiver.counts()).toEqual(new Map([[`msg_${job!.job_id}`, 3]]));
    const verifier = new Webhook(secret);
    for (const r of receiver.requests) {
      expect(() =>
        verifier.verify(r.body, {
          'webhook-id': String(r.headers['webhook-id']),
          'webhook-timestamp': String(r.headers['webhook-timestamp']),
          'webhook-signature': String(r.headers['webhook-signature']),
        }),
      ).not.toThrow();
    }
    const after = await jobGet(db.pool, job!.job_id);
    expect(after?.callback_status).toBe('delivered');
    expect(after?.status).toBe('done');
    expect(after?.callback_attempts?.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
      [1, 500, 'HTTP 500'],
      [2, 500, 'HTTP 500'],
      [3, 200, null],
    ]);
  });

  it('410 fails at once; a 3xx fails at once without following the redirect', async () => {
    const [gone, moved] = await finishedJobs(db.pool, receiver.url('/gone'), ['done', 'error']);
    await db.pool.query('UPDATE ix_jobs SET callback_url = $2 WHERE job_id = $1', [
      moved!.job_id,
      receiver.url('/moved'),
    ]);
    receiver.respond = (r) =>
      String(r.headers['webhook-id']).endsWith(gone!.job_id)
        ? { status: 410 }
        : { status: 302, headers: { location: receiver.url('/elsewhere') } };
    const deliverer = makeDeliverer({ pool: db.pool, env: { IX_CALLBACK_RETRY_SCHEDULE: '0,0,0' } });
    expect(await deliverer.runOnce()).toBe(2);
    expect(await deliverer.runOnce()).toBe(0);
    expect(receiver.requests).toHaveLength(2);
    expect(await jobGet(db.pool, gone!.job_id)).toMatchObject({
      status: 'done',
      callback_status: 'failed',
      callback_attempts: [{ attempt: 1, status_code: 410, error: 'HTTP 410' }],
    });
    const redirected = await jobGet(db.pool, moved!.job_id);
    expect(redirected).toMatchObject({ status: 'error', callback_status: 'failed' });
    expect(redirected?.callback_attempts?.[0]?.error).toMatch(
      /HTTP 302: redirect to .*\/elsewhere not followed/,
    );
  });

  it('a schedule used up ends failed; Retry-After lengthens the wait', async () => {
    const clock = new TestClock();
    const [job] = await finishedJobs(db.pool, receiver.url(), ['done']);
    receiver.respond = () => ({ status: 429, headers: { 'retry-after': '100' } });
    const deliverer = makeDeliverer({ pool: db.pool, clock, env: { IX_CALLBACK_RETRY_SCHEDULE: '0,10,20' } });
    expect(await deliverer.runOnce()).toBe(1);
    receiver.respond = () => ({ status: 503 });
    clock.advance(50);
    expect(await deliverer.runOnce()).toBe(0); // the schedule says 10 s, the receiver asked for 100
    clock.advance(51);
    expect(await deliverer.runOnce()).toBe(1);
    clock.advance(25);
    expect(await deliverer.runOnce()).toBe(1);
    clock.advance(1000);
    expect(await deliverer.runOnce()).toBe(0);
    const after = await jobGet(db.pool, job!.job_id);
    expect(after).toMatchObject({ status: 'done', callback_status: 'failed' });
    expect(after?.callback_attempts?.map((a) => a.status_code)).toEqual([429, 503, 503]);
    expect(after?.callback_attempts?.[2]?.error).toBe('HTTP 503; gave up after 3 attempts');
  });

  it('a receiver that never answers times out and is retried', async () => {
    const clock = new TestClock();
    const [job] = await finishedJobs(db.pool, receiver.url(), ['done']);
    receiver.respond = (_r, n) => (n === 1 ? 'hang' : { status: 200 });
    const deliverer = makeDeliverer({
      pool: db.pool,
      clock,
      env: { IX_CALLBACK_TIMEOUT_SECONDS: '1', IX_CALLBACK_RETRY_SCHEDULE: '0,5' },
    });
    const started = Date.now();
    expect(await deliverer.runOnce()).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await jobGet(db.pool, job!.job_id))?.callback_attempts).toEqual([
      { attempt: 1, at: expect.any(String), status_code: null, error: 'timed out after 1000 ms' },
    ]);
    clock.advance(6);
    expect(await deliverer.runOnce()).toBe(1);
    expect(await jobGet(db.pool, job!.job_id)).toMatchObject({ callback_status: 'delivered' });
    expect(receiver.counts()).toEqual(new Map([[`msg_${job!.job_id}`, 2]]));
  });

  it('a wake during a pass is not lost: the next pass runs without the idle wait', async () => {
    const [first] = await finishedJobs(db.pool, receiver.url(), ['done']);
    // The first delivery hangs until its 1 s timeout, so the pass is still running when woken.
    receiver.respond = (_r, n) => (n === 1 ? 'hang' : { status: 200 });
    const deliverer = makeDeliverer({
      pool: db.pool,
      env: { IX_CALLBACK_TIMEOUT_SECONDS: '1' },
      options: { idleMs: 60_000 },
    });
    deliverer.start();
    try {
      for (let i = 0; i < 100 && receiver.requests.length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(receiver.requests).toHaveLength(1);
      const [second] = await finishedJobs(db.pool, receiver.url(), ['done']);
      deliverer.wake();
      for (
        let i = 0;
        i < 100 && (await jobGet(db.pool, second!.job_id))?.callback_status !== 'delivered';
        i++
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await jobGet(db.pool, second!.job_id))?.callback_status).toBe('delivered');
      expect((await jobGet(db.pool, first!.job_id))?.callback_attempts?.[0]?.error).toBe(
        'timed out after 1000 ms',
      );
    } finally {
      await deliverer.stop();
    }
  });

  it('start() delivers in the background and stop() ends the loop', async () => {
    const deliverer = makeDeliverer({ pool: db.pool, options: { idleMs: 50 } });
    deliverer.start();
    try {
      const [job] = await finishedJobs(db.pool, receiver.url(), ['done']);
      deliverer.wake();
      for (let i = 0; i < 100 && (await jobGet(db.pool, job!.job_id))?.callback_status !== 'delivered'; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await jobGet(db.pool, job!.job_id))?.callback_status).toBe('delivered');
    } finally {
      await deliverer.stop();
    }
    expect(receiver.requests).toHaveLength(1);
  });
});
