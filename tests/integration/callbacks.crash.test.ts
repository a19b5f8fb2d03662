import { beforeEach, describe, expect, it } from 'vitest';
import { callbackClaimDue, createPool, jobGet } from '../../src/store/index.js';
import { callbackPendingCount, makeDeliverer, TestClock } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { finishedJobs } from '../support/jobs.js';
import { type Receiver, useReceiver } from '../support/receiver.js';

const db = useTestDatabase();
const receiverOfTest = useReceiver();
let receiver: Receiver;
beforeEach(() => {
  receiver = receiverOfTest.current;
});

describe('durable delivery', () => {
  it('a job marked done whose worker died before delivering is delivered by a fresh deliverer', async () => {
    // The "worker" finished the job and went away: only the database knows a callback is owed.
    const [job] = await finishedJobs(db.pool, receiver.url(), ['done']);
    expect(await callbackPendingCount(db.pool)).toBe(1);
    const pool = createPool(db.url, { max: 2 });
    try {
      expect(await makeDeliverer({ pool }).runOnce()).toBe(1);
    } finally {
      await pool.end();
    }
    expect(receiver.counts()).toEqual(new Map([[`msg_${job!.job_id}`, 1]]));
    expect(await jobGet(db.pool, job!.job_id)).toMatchObject({
      status: 'done',
      callback_status: 'delivered',
    });
  });

  it('a delivery whose deliverer claimed it and died is made by another once the lease runs out', async () => {
    const clock = new TestClock();
    const [job] = await finishedJobs(db.pool, receiver.url(), ['error']);
    const env = { IX_CALLBACK_TIMEOUT_SECONDS: '15' };
    const fresh = makeDeliverer({ pool: db.pool, clock, env });
    // The dead deliverer's claim, with the lease a deliverer takes: 2 × timeout + 30 s.
    expect(await callbackClaimDue(db.pool, 10, { leaseSeconds: 60, now: clock.now() })).toHaveLength(1);
    clock.advance(59);
    expect(await fresh.runOnce()).toBe(0);
    expect(receiver.requests).toEqual([]);
    clock.advance(2);
    expect(await fresh.runOnce()).toBe(1);
    expect(receiver.counts()).toEqual(new Map([[`msg_${job!.job_id}`, 1]]));
    expect(await jobGet(db.pool, job!.job_id)).toMatchObject({
      status: 'error',
      callback_status: 'delivered',
      callback_attempts: [{ attempt: 1, status_code: 204, error: null }],
    });
  });

  it('3 deliverers with separate pools racing over 200 callbacks deliver each exactly once', async () => {
    const jobs = await finishedJobs(
      db.pool,
      receiver.url(),
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 'done' : 'error')),
    );
    const pools = [0, 1, 2].map(() => createPool(db.url, { max: 3 }));
    try {
      const deliverers = pools.map((pool) => makeDeliverer({ pool, options: { batchSize: 7 } }));
      const attempted = await Promise.all(
        deliverers.map(async (deliverer, i) => {
          let total = 0;
          while ((await callbackPendingCount(pools[i]!)) > 0) {
            const n = await deliverer.runOnce();
            total += n;
            // The rest are leased to the others: wait for them to be recorded.
            if (n === 0) await new Promise((r) => setTimeout(r, 10));
          }
          return total;
        }),
      );
      expect(attempted.reduce((a, b) => a + b, 0)).toBe(200);
      // Each deliverer did a share of the work, so this was a race and not a queue.
      expect(attempted.filter((n) => n > 0).length).toBeGreaterThan(1);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const counts = receiver.counts();
    expect(counts.size).toBe(200);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(counts.keys())).toEqual(new Set(jobs.map((j) => `msg_${j.job_id}`)));
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ix_jobs
       WHERE callback_status = 'delivered' AND jsonb_array_length(callback_attempts) = 1`,
    );
    expect(rows[0]?.n).toBe(200);
  }, 60_000);
});
