/**
 * jobInsertMany tries a batch as new keys first (no ON CONFLICT), and after a key in use takes ON
 * CONFLICT at once for a while. That pause is the process's, so these tests have a file (and a
 * process) of their own, and run in order.
 */
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { jobGet, jobInsertMany } from '../../src/store/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { admitted, claimPending, insertPending } from '../support/jobs.js';

const db = useTestDatabase();

const fresh = (n: number) => Array.from({ length: n }, () => ({ request: makeRequest(), callbackUrl: null }));

/** `work` on a connection of its own; the inserts that ran on it, by their prepared statements. */
async function onOwnConnection<T>(work: (client: pg.Client) => Promise<T>) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const result = await work(client);
    const { rows } = await client.query<{ name: string }>(
      `SELECT name FROM pg_prepared_statements WHERE name LIKE 'ix\\_job\\_insert%' ORDER BY name`,
    );
    return { result, inserts: rows.map((r) => r.name) };
  } finally {
    await client.end();
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('jobInsertMany, new keys first', () => {
  it('a single new submission goes in without ON CONFLICT', async () => {
    const { result, inserts } = await onOwnConnection((client) => jobInsertMany(client, fresh(1)));
    expect(inserts).toEqual(['ix_job_insert_new']);
    const [one] = admitted(result);
    expect(one!.created).toBe(true);
    expect(await jobGet(db.pool, one!.job.job_id)).toEqual(one!.job);
  });

  it('a batch of new keys goes in without ON CONFLICT, and is queued in submission order', async () => {
    const batch = fresh(150);
    const { result, inserts } = await onOwnConnection((client) => jobInsertMany(client, batch));
    expect(inserts).toEqual(['ix_job_insert_new']);
    const results = admitted(result);
    expect(results.every((r) => r.created && r.conflict === null)).toBe(true);
    expect(await jobGet(db.pool, results[149]!.job.job_id)).toEqual(results[149]!.job);
    // Its ix_ids ascend in submission order too, as its job ids do.
    const ixIds = results.map((r) => r.job.ix_id);
    expect(ixIds).toEqual([...ixIds].sort());
    const claimed = await claimPending(db.pool, 200);
    expect(claimed.map((j) => j.request_id)).toEqual(batch.map((s) => s.request.request_id));
  });

  it('inside a transaction block, a batch goes through ON CONFLICT at once: a failed try would end the transaction', async () => {
    const known = await insertPending(db.pool, makeRequest(), null);
    const batch = [...fresh(120), { request: known.job.request, callbackUrl: null }];
    const { result, inserts } = await onOwnConnection(async (client) => {
      await client.query('BEGIN');
      const results = await jobInsertMany(client, batch);
      await client.query('COMMIT');
      return results;
    });
    expect(inserts).toEqual(['ix_job_insert_many']);
    expect(result.map((r) => r.created)).toEqual([...Array(120).fill(true), false]);
    expect(result[120]).toEqual({ job: known.job, created: false, conflict: null });
  });

  it('a key in use fails the try without ON CONFLICT; the batch then gets the answers it would have had', async () => {
    const known = await insertPending(db.pool, makeRequest(), 'https://known.example.com/cb');
    const batch = [
      ...fresh(120),
      { request: known.job.request, callbackUrl: 'https://known.example.com/cb' },
      { request: known.job.request, callbackUrl: 'https://other.example.com/cb' },
    ];
    batch.push({
      request: { ...batch[0]!.request, input: 'another request under a key of this batch' },
      callbackUrl: null,
    });
    const { result, inserts } = await onOwnConnection((client) => jobInsertMany(client, batch));
    expect(inserts).toEqual(['ix_job_insert_many', 'ix_job_insert_new']);
    const results = admitted(result);
    expect(results.map((r) => r.created)).toEqual([...Array(120).fill(true), false, false, false]);
    expect(results[120]).toEqual({ job: known.job, created: false, conflict: null });
    expect(results[121]!.job).toEqual(known.job);
    expect(results[121]!.conflict?.jobId).toBe(known.job.job_id);
    expect(results[122]!.job).toEqual(results[0]!.job);
    expect(results[122]!.conflict?.jobId).toBe(results[0]!.job.job_id);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_job_queue');
    expect(rows[0].n).toBe(121);
  });

  it('for a while after a key in use, batches of every size go through ON CONFLICT at once', async () => {
    for (const size of [1, 100]) {
      const next = await onOwnConnection((client) => jobInsertMany(client, fresh(size)));
      expect(next.inserts).toEqual(['ix_job_insert_many']);
      expect(next.result.every((r) => r.created)).toBe(true);
    }
  });

  it('30 s later, a batch tries new keys first again; a single replay fails that try and is answered', async () => {
    const known = await insertPending(db.pool, makeRequest(), null);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 30_001);
    const replay = await onOwnConnection((client) =>
      jobInsertMany(client, [{ request: known.job.request, callbackUrl: null }]),
    );
    expect(replay.inserts).toEqual(['ix_job_insert_many', 'ix_job_insert_new']);
    expect(replay.result).toEqual([{ job: known.job, created: false, conflict: null }]);
    const next = await onOwnConnection((client) => jobInsertMany(client, fresh(1)));
    expect(next.inserts).toEqual(['ix_job_insert_many']);
  });
});
