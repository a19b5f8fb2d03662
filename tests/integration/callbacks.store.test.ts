import { describe, expect, it } from 'vitest';
import { callbackClaimDue, callbackRecordAttempt, jobGet } from '../../src/store/index.js';
import { callbackPendingCount } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { finishedJobs } from '../support/jobs.js';

const db = useTestDatabase();
const T0 = new Date('2030-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

describe('callback queue', () => {
  it('a finished job is claimed once, leased, and claimable again only after the lease', async () => {
    const [job] = await finishedJobs(db.pool, 'https://example.com/hook', ['done']);
    const first = await callbackClaimDue(db.pool, 10, { leaseSeconds: 60, now: at(0) });
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ attempt: 1, job: { job_id: job!.job_id, status: 'done' } });
    expect(await callbackClaimDue(db.pool, 10, { leaseSeconds: 60, now: at(59) })).toEqual([]);
    const again = await callbackClaimDue(db.pool, 10, { leaseSeconds: 60, now: at(61) });
    expect(again.map((c) => c.attempt)).toEqual([1]);
  });

  it('jobs without a callback URL owe nothing; the first delay holds back the first attempt', async () => {
    await finishedJobs(db.pool, null, ['done', 'error']);
    expect(await callbackPendingCount(db.pool)).toBe(0);
    await finishedJobs(db.pool, 'https://example.com/hook', ['done']);
    expect(await callbackClaimDue(db.pool, 10, { leaseSeconds: 60, firstDelaySeconds: 3600 })).toEqual([]);
    expect(await callbackClaimDue(db.pool, 10, { leaseSeconds: 60 })).toHaveLength(1);
  });

  it('records attempts in order, schedules the next, and ends with callback_status, never touching status', async () => {
    const [job] = await finishedJobs(db.pool, 'https://example.com/hook', ['error']);
    const id = job!.job_id;
    await callbackClaimDue(db.pool, 1, { leaseSeconds: 60, now: at(0) });
    expect(
      await callbackRecordAttempt(db.pool, id, 1, {
        statusCode: 503,
        error: 'HTTP 503',
        next: { retryInSeconds: 5 },
        now: at(1),
      }),
    ).toBe(true);
    expect(await callbackClaimDue(db.pool, 1, { leaseSeconds: 60, now: at(5) })).toEqual([]);
    const second = await callbackClaimDue(db.pool, 1, { leaseSeconds: 60, now: at(6) });
    expect(second[0]?.attempt).toBe(2);
    expect(second[0]?.job.callback_attempts).toEqual([
      { attempt: 1, at: at(1).toISOString(), status_code: 503, error: 'HTTP 503' },
    ]);
    expect(
      await callbackRecordAttempt(db.pool, id, 2, {
        statusCode: 200,
        error: null,
        next: 'delivered',
        now: at(7),
      }),
    ).toBe(true);
    const after = await jobGet(db.pool, id);
    expect(after).toEqual({
      ...job,
      callback_status: 'delivered',
      callback_attempts: [
        { attempt: 1, at: at(1).toISOString(), status_code: 503, error: 'HTTP 503' },
        { attempt: 2, at: at(7).toISOString(), status_code: 200, error: null },
      ],
    });
    expect(await callbackPendingCount(db.pool)).toBe(0);
  });

  it('a stale deliverer cannot record over a newer attempt (fenced on the attempt number)', async () => {
    const [job] = await finishedJobs(db.pool, 'https://example.com/hook', ['done']);
    const id = job!.job_id;
    await callbackClaimDue(db.pool, 1, { leaseSeconds: 60, now: at(0) });
    // The first deliverer stalls past its lease; a second claims the same attempt and retries it.
    await callbackClaimDue(db.pool, 1, { leaseSeconds: 60, now: at(61) });
    const retry = { statusCode: 500, error: 'HTTP 500', next: { retryInSeconds: 5 } } as const;
    expect(await callbackRecordAttempt(db.pool, id, 1, { ...retry, now: at(62) })).toBe(true);
    // The stale one wakes up: its attempt 1 no longer applies, whether it says delivered or failed.
    expect(
      await callbackRecordAttempt(db.pool, id, 1, { statusCode: 200, error: null, next: 'delivered' }),
    ).toBe(false);
    expect(await callbackRecordAttempt(db.pool, id, 1, { ...retry, now: at(63) })).toBe(false);
    const after = await jobGet(db.pool, id);
    expect(after?.callback_status).toBeNull();
    expect(after?.callback_attempts).toHaveLength(1);
    expect(
      await callbackRecordAttempt(db.pool, id, 2, { statusCode: 410, error: 'HTTP 410', next: 'failed' }),
    ).toBe(true);
    expect(
      await callbackRecordAttempt(db.pool, id, 3, { statusCode: 200, error: null, next: 'delivered' }),
    ).toBe(false);
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'done', callback_status: 'failed' });
  });
});
