import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { JobSchema, type JsonValue } from '../../src/contracts/index.js';
import {
  CorruptJobError,
  callbackClaimDue,
  callbackRecordAttempt,
  createPool,
  IdempotencyConflictError,
  jobClaimMany,
  jobCompleteMany,
  jobGet,
  jobGetByCorrelation,
  jobInsertMany,
  jobReleaseMany,
  jobStartMany,
  jobSweepOrphans,
  Notifier,
  outcomeKey,
  PENDING_CHANNEL,
  withTransaction,
  workerHeartbeat,
  workerPruneStale,
} from '../../src/store/index.js';
import { requestDigest } from '../../src/store/jobs/digest.js';
import { heldJobCount, useTestDatabase } from '../support/db.js';
import { differingReplays, FIRST_CALLBACK_URL, failure, makeRequest, success } from '../support/factories.js';
import { admitted, claimNextPending, claimPending, finishJob, insertPending } from '../support/jobs.js';
import { eventually } from '../support/worker.js';

const db = useTestDatabase();

/** A connection listening on the channel idle workers are woken on, counting what it hears. */
async function listenPending(): Promise<{ listener: pg.Client; readonly seen: number }> {
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  let seen = 0;
  listener.on('notification', () => {
    seen += 1;
  });
  await listener.query(`LISTEN ${PENDING_CHANNEL}`);
  return {
    listener,
    get seen() {
      return seen;
    },
  };
}
const WORKER = '00000000-0000-7000-8000-0000000000aa';

async function insertMany(n: number, clientId = 'acme') {
  const jobs = [];
  for (let i = 0; i < n; i++)
    jobs.push((await insertPending(db.pool, makeRequest({ ix_client_id: clientId }), null)).job);
  return jobs;
}

/** `value` with the keys of every object in it in reverse order: the same JSON document to jsonb. */
function keysReversed(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(keysReversed);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, keysReversed(v)]),
  );
}

describe('jobInsertMany', () => {
  it('creates a pending job with a generated ix_id and the request as given', async () => {
    const request = makeRequest();
    const { job, created } = await insertPending(db.pool, request, 'https://example.com/hook');
    expect(created).toBe(true);
    expect(job).toMatchObject({
      client_id: 'acme',
      request_id: request.request_id,
      status: 'pending',
      callback_url: 'https://example.com/hook',
      callback_status: null,
      attempts: 0,
      response: null,
      started_at: null,
      finished_at: null,
    });
    expect(job.request).toEqual({ ...request, ix_id: job.ix_id });
    expect(await jobGet(db.pool, job.job_id)).toEqual(job);
  });

  it('an identical replay returns the first row unchanged, with created: false and no conflict', async () => {
    const request = makeRequest({ input: { document: 's3://a.pdf', options: { dpi: 300, ocr: true } } });
    const first = await insertPending(db.pool, request, 'https://first.example.com/cb');
    const claimed = await claimNextPending(db.pool);
    expect(claimed?.job_id).toBe(first.job.job_id);
    // The same request: its keys in another order, and an ix_id of its own, which ix ignores.
    const replay = await insertPending(
      db.pool,
      {
        input: { options: { ocr: true, dpi: 300 }, document: 's3://a.pdf' },
        request_id: request.request_id,
        ix_client_id: request.ix_client_id,
        ix_id: 'ffffffffffffffff',
      },
      'https://first.example.com/cb',
    );
    expect(replay).toEqual({ job: claimed, created: false, conflict: null });
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
    expect(rows[0].n).toBe(1);
  });

  it.each(differingReplays)(
    'a replay with a different %s is a conflict naming the first job, which stays unchanged',
    async (_, replayOf, callbackUrl) => {
      const request = makeRequest();
      const first = await insertPending(db.pool, request, FIRST_CALLBACK_URL);
      const replay = await insertPending(db.pool, replayOf(request), callbackUrl);
      expect(replay.created).toBe(false);
      expect(replay.conflict).toBeInstanceOf(IdempotencyConflictError);
      expect(replay.conflict).toMatchObject({
        jobId: first.job.job_id,
        clientId: request.ix_client_id,
        requestId: request.request_id,
      });
      expect(replay.conflict?.message).toContain(first.job.job_id);
      expect(replay.job).toEqual(first.job);
      expect(await jobGet(db.pool, first.job.job_id)).toEqual(first.job);
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
      expect(rows[0].n).toBe(1);
    },
  );

  it('the request digest is the SHA-256 of jsonb_build_array(input, callback_url)::text, whatever they hold, made from the row', async () => {
    // PostgreSQL text cannot hold NUL, nor jsonb the escape \u0000.
    const storable = (value: unknown) => !JSON.stringify(value).includes('\\u0000');
    const batches = fc.array(
      fc.record({
        input: fc
          .oneof(fc.jsonValue({ stringUnit: 'grapheme' }), fc.jsonValue({ stringUnit: 'binary-ascii' }))
          .filter(storable)
          .map((value): JsonValue => JSON.parse(JSON.stringify(value))),
        callbackUrl: fc.option(fc.string({ unit: 'grapheme' }).filter(storable)),
      }),
      { minLength: 1, maxLength: 30 },
    );
    await fc.assert(
      fc.asyncProperty(batches, async (batch) => {
        const submissions = batch.map(({ input, callbackUrl }) => ({
          request: makeRequest({ input }),
          callbackUrl,
        }));
        admitted(await jobInsertMany(db.pool, submissions));
        const { rows } = await db.pool.query(`
          SELECT count(*)::int AS n FROM ix_jobs j
          WHERE request_digest IS NOT NULL
            OR ${requestDigest('j')} IS DISTINCT FROM sha256(convert_to(jsonb_build_array(input, callback_url)::text, 'UTF8'))`);
        expect(rows[0].n).toBe(0);
        const replays = admitted(
          await jobInsertMany(
            db.pool,
            submissions.map((s) => ({
              ...s,
              request: { ...s.request, input: keysReversed(s.request.input) },
            })),
          ),
        );
        expect(replays.filter((r) => r.created || r.conflict !== null)).toEqual([]);
      }),
      { numRuns: 30 },
    );
  });

  it('a job that kept its digest (versions 5 to 15) is compared by it; one without, by the request its row holds', async () => {
    const request = makeRequest();
    const other = { ...request, input: { other: true } };
    const first = await insertPending(db.pool, request, null);
    const { rows } = await db.pool.query('SELECT request_digest FROM ix_jobs WHERE job_id = $1', [
      first.job.job_id,
    ]);
    expect(rows[0].request_digest).toBeNull();
    expect(await insertPending(db.pool, request, null)).toEqual({
      job: first.job,
      created: false,
      conflict: null,
    });
    expect((await insertPending(db.pool, other, null)).conflict).toBeInstanceOf(IdempotencyConflictError);
    // A stored digest is what a replay is compared with: here, the other request's.
    await db.pool.query(
      `UPDATE ix_jobs SET request_digest = sha256(convert_to(jsonb_build_array('{"other": true}'::jsonb, NULL::text)::text, 'UTF8'))
       WHERE job_id = $1`,
      [first.job.job_id],
    );
    expect(await insertPending(db.pool, other, null)).toEqual({
      job: first.job,
      created: false,
      conflict: null,
    });
    expect((await insertPending(db.pool, request, null)).conflict).toBeInstanceOf(IdempotencyConflictError);
  });

  it('50 concurrent inserts of one key from separate connections make exactly one row', async () => {
    const request = makeRequest();
    const clients = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        return client;
      }),
    );
    try {
      // Half of them send another callback_url: whichever insert wins, the other half conflict.
      const results = await Promise.all(
        clients.map((client, i) => insertPending(client, request, `https://example.com/${i % 2}`)),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.job.job_id)).size).toBe(1);
      expect(new Set(results.map((r) => r.job.callback_url)).size).toBe(1);
      const winner = results.find((r) => r.created)!.job;
      const conflicts = results.filter((r) => r.conflict !== null);
      expect(conflicts).toHaveLength(25);
      for (const r of conflicts) expect(r.conflict?.jobId).toBe(winner.job_id);
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
      expect(rows[0].n).toBe(1);
      const { rows: queued } = await db.pool.query('SELECT count(*)::int AS n FROM ix_job_queue');
      expect(queued[0].n).toBe(1);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  }, 30_000);

  it('ignores a caller-supplied ix_id and generates 16 lowercase hex ids, unique over 10,000 inserts', async () => {
    const { job } = await insertPending(db.pool, makeRequest({ ix_id: 'ffffffffffffffff' }), null);
    expect(job.ix_id).not.toBe('ffffffffffffffff');
    expect(job.request.ix_id).toBe(job.ix_id);
    // 10,000 through the repository, 10 at a time.
    const ids = new Set<string>();
    const lanes = Array.from({ length: 10 }, async () => {
      for (let i = 0; i < 1000; i++) {
        const { job: j } = await insertPending(db.pool, makeRequest({ ix_id: 'ffffffffffffffff' }), null);
        expect(j.ix_id).toMatch(/^[0-9a-f]{16}$/);
        ids.add(j.ix_id);
      }
    });
    await Promise.all(lanes);
    expect(ids.size).toBe(10_000);
  }, 120_000);

  it('keeps the same request_id of different clients apart', async () => {
    const a = await insertPending(db.pool, makeRequest({ ix_client_id: 'a', request_id: 'same' }), null);
    const b = await insertPending(db.pool, makeRequest({ ix_client_id: 'b', request_id: 'same' }), null);
    expect(a.created && b.created).toBe(true);
    expect(a.job.job_id).not.toBe(b.job.job_id);
  });

  it('the notifier wakes listeners after inserts, coalescing a burst into few notifications', async () => {
    const pending = await listenPending();
    const notifier = Notifier.pending(db.pool);
    for (let i = 0; i < 100; i++) await insertPending(db.pool, makeRequest(), null);
    for (let i = 0; i < 100; i++) notifier.notify();
    await notifier.settled();
    await eventually(async () => pending.seen > 0, 'a notification arrives');
    await pending.listener.end();
    await new Promise((r) => setTimeout(r, 100));
    // The first call sends; the 99 made while it was in flight are covered by one more.
    expect(pending.seen).toBe(2);
  });

  it('the notifier sends at most one notification every 5 ms, however often it is asked', async () => {
    const pending = await listenPending();
    const notifier = Notifier.pending(db.pool);
    const started = performance.now();
    // Asked every millisecond or so, as a busy API would after each insert statement.
    for (let i = 0; i < 60; i++) {
      notifier.notify();
      await new Promise((r) => setTimeout(r, 1));
    }
    await notifier.settled();
    const elapsedMs = performance.now() - started;
    await eventually(async () => pending.seen > 0, 'a notification arrives');
    await new Promise((r) => setTimeout(r, 100));
    await pending.listener.end();
    // 3 ms, not 5: the notifier reads a clock of whole milliseconds, and timers the event loop's.
    expect(pending.seen).toBeGreaterThanOrEqual(2);
    expect(pending.seen).toBeLessThanOrEqual(Math.floor(elapsedMs / 3) + 1);
  });

  it('inside a caller transaction that rolls back, nothing is stored', async () => {
    const request = makeRequest();
    await expect(
      withTransaction(db.pool, async (tx) => {
        await insertPending(tx, request, null);
        throw new Error('caller changed its mind');
      }),
    ).rejects.toThrow('caller changed its mind');
    expect(await jobGetByCorrelation(db.pool, request.ix_client_id, request.request_id)).toBeNull();
  });
});

describe('jobGet and jobGetByCorrelation', () => {
  it('find a job by id and by (client_id, request_id); unknown ones are null', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    expect(await jobGetByCorrelation(db.pool, job.client_id, job.request_id)).toEqual(job);
    expect(await jobGetByCorrelation(db.pool, 'other-client', job.request_id)).toBeNull();
    expect(await jobGet(db.pool, '00000000-0000-7000-8000-000000000000')).toBeNull();
  });

  it("a response is stored without its ix_id, and read with the row's; one stored with it reads the same, one with another is corrupt", async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await claimNextPending(db.pool);
    await finishJob(db.pool, job.job_id, 0, success(job.ix_id, { n: 1 }));
    const stored = await db.pool.query('SELECT response FROM ix_jobs WHERE job_id = $1', [job.job_id]);
    expect(stored.rows[0].response).toEqual({ error: null, result: { n: 1 } });
    const read = await jobGet(db.pool, job.job_id);
    expect(read?.response).toEqual({ ix_id: job.ix_id, error: null, result: { n: 1 } });
    await db.pool.query(
      `UPDATE ix_jobs SET response = jsonb_build_object('ix_id', ix_id) || response WHERE job_id = $1`,
      [job.job_id],
    );
    expect(await jobGet(db.pool, job.job_id)).toEqual(read);
    await db.pool.query(
      `UPDATE ix_jobs SET response = response || '{"ix_id": "0000000000000001"}' WHERE job_id = $1`,
      [job.job_id],
    );
    await expect(jobGet(db.pool, job.job_id)).rejects.toThrow(
      /response\.ix_id: "0000000000000001", not the job's own/,
    );
  });

  it('a row whose JSONB does not fit the contract throws an error naming the job', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await claimNextPending(db.pool);
    await finishJob(db.pool, job.job_id, 0, success(job.ix_id));
    await db.pool.query(
      `UPDATE ix_jobs SET response = '{"ix_id": 5, "error": null, "result": null}' WHERE job_id = $1`,
      [job.job_id],
    );
    const read = jobGet(db.pool, job.job_id);
    await expect(read).rejects.toBeInstanceOf(CorruptJobError);
    await expect(jobGet(db.pool, job.job_id)).rejects.toThrow(job.job_id);
    await expect(jobGet(db.pool, job.job_id)).rejects.toThrow(/response\.ix_id/);
  });

  it('a stored run that does not fit the contract is named by its place in earlier_runs', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), null);
    await db.pool.query(
      `UPDATE ix_jobs SET earlier_runs = '[{"attempt": 1, "outcome": "vanished"}]' WHERE job_id = $1`,
      [job.job_id],
    );
    await expect(jobGet(db.pool, job.job_id)).rejects.toThrow(/earlier_runs\.0\.outcome/);
  });
});

describe('hydration', () => {
  it('every job read back, in every state, satisfies the Job contract', async () => {
    const jobs = [];
    for (let i = 0; i < 5; i++)
      jobs.push((await insertPending(db.pool, makeRequest(), 'https://example.com/cb')).job);
    const claimed = await claimPending(db.pool, 4);
    const [running, done, failed, retried, pending] = jobs;
    await finishJob(db.pool, done!.job_id, 0, success(done!.ix_id));
    await finishJob(db.pool, failed!.job_id, 0, failure(failed!.ix_id, 'boom'));
    const retry = { jobId: retried!.job_id, attempt: 0, status: 'retry' as const, retryInSeconds: 60 };
    await jobCompleteMany(db.pool, [{ ...retry, response: failure(retried!.ix_id, 'busy') }]);
    await callbackClaimDue(db.pool, 10, { leaseSeconds: 60 });
    await callbackRecordAttempt(db.pool, done!.job_id, 1, {
      statusCode: 503,
      error: 'HTTP 503',
      next: { retryInSeconds: 5 },
    });
    await callbackRecordAttempt(db.pool, failed!.job_id, 1, {
      statusCode: 200,
      error: null,
      next: 'delivered',
    });
    const read = await Promise.all(
      [pending, running, done, failed, retried].map((job) => jobGet(db.pool, job!.job_id)),
    );
    expect(read.map((job) => [job?.status, job?.callback_status, job?.callback_attempts?.length])).toEqual([
      ['pending', null, undefined],
      ['running', null, undefined],
      ['done', null, 1],
      ['error', 'delivered', 1],
      ['pending', null, undefined],
    ]);
    expect(read.map((job) => job?.attempt_history.map((run) => run.outcome))).toEqual([
      [],
      ['running'],
      ['done'],
      ['error'],
      ['retry'],
    ]);
    expect(read[1]?.attempt_history[0]).toMatchObject({ finished_at: null, duration_ms: null });
    expect(read[4]?.attempt_history[0]).toMatchObject({
      attempt: 1,
      error: 'busy',
      retry_at: read[4]?.run_after,
    });
    for (const job of [...read, ...claimed]) expect(JobSchema.parse(job)).toEqual(job);
  });
});

describe('jobClaimMany', () => {
  it('claims oldest first and moves the job to running with started_at', async () => {
    const [first, second, third] = await insertMany(3);
    const claimed = await claimNextPending(db.pool);
    expect(claimed?.job_id).toBe(first!.job_id);
    expect(claimed?.status).toBe('running');
    expect(claimed?.started_at).not.toBeNull();
    const batch = await claimPending(db.pool, 5);
    expect(batch.map((j) => j.job_id)).toEqual([second!.job_id, third!.job_id]);
    expect(await claimNextPending(db.pool)).toBeNull();
  });

  it('SKIP LOCKED: while A holds its claim uncommitted, B claims the next row without waiting', async () => {
    await insertMany(2);
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      const fromA = await claimNextPending(a);
      await b.query(`SET LOCAL lock_timeout = '500ms'`);
      const started = performance.now();
      const fromB = await claimNextPending(b);
      expect(performance.now() - started).toBeLessThan(500);
      expect(fromA).not.toBeNull();
      expect(fromB).not.toBeNull();
      expect(fromB!.job_id).not.toBe(fromA!.job_id);
      await a.query('COMMIT');
      await b.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
  });

  it('8 concurrent claimers over 2,000 pending jobs claim every job exactly once', async () => {
    await db.pool.query(`
      WITH j AS (
        INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input)
        SELECT gen_random_uuid(), lpad(to_hex(g), 16, '0'), 'acme', 'r' || g, '{}' FROM generate_series(1, 2000) g
        RETURNING job_id, client_id
      ) INSERT INTO ix_job_queue (job_id, client_id) SELECT job_id, client_id FROM j`);
    const pools = Array.from({ length: 8 }, () => createPool(db.url, { max: 1 }));
    try {
      const claimedBy = await Promise.all(
        pools.map(async (pool) => {
          const mine: string[] = [];
          for (;;) {
            const batch = await claimPending(pool, 7);
            if (batch.length === 0) return mine;
            mine.push(...batch.map((j) => j.job_id));
          }
        }),
      );
      const all = claimedBy.flat();
      expect(all).toHaveLength(2000);
      expect(new Set(all).size).toBe(2000);
      expect(claimedBy.filter((mine) => mine.length > 0).length).toBeGreaterThan(1);
      const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM ix_jobs GROUP BY status`);
      expect(rows).toEqual([{ status: 'running', n: 2000 }]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  }, 60_000);

  it('rejects a limit below 1', async () => {
    await expect(jobClaimMany(db.pool, { limit: 0, workerId: null, startNow: 0 })).rejects.toThrow(
      RangeError,
    );
  });
});

describe('jobCompleteMany', () => {
  it('an outcome whose error is null ends done, one with an error ends error', async () => {
    const [a, b, c] = await insertMany(3);
    await claimPending(db.pool, 3);
    expect(await finishJob(db.pool, a!.job_id, 0, success(a!.ix_id, { pages: 3 }))).toBe(true);
    expect(await finishJob(db.pool, b!.job_id, 0, failure(b!.ix_id, 'bad scan'))).toBe(true);
    expect(await finishJob(db.pool, c!.job_id, 0, failure(c!.ix_id, 'timed out'))).toBe(true);
    const [da, db_, dc] = await Promise.all([a, b, c].map((j) => jobGet(db.pool, j!.job_id)));
    expect(da).toMatchObject({
      status: 'done',
      response: { ix_id: a!.ix_id, error: null, result: { pages: 3 } },
    });
    expect(da!.finished_at).not.toBeNull();
    expect(db_).toMatchObject({ status: 'error', response: { error: 'bad scan' } });
    expect(dc).toMatchObject({ status: 'error', response: { error: 'timed out' } });
    expect(await heldJobCount(db.pool)).toBe(0);
  });

  it('terminal states are stable: marking a done or error job again changes nothing', async () => {
    const [a, b] = await insertMany(2);
    await claimPending(db.pool, 2);
    await finishJob(db.pool, a!.job_id, 0, success(a!.ix_id));
    await finishJob(db.pool, b!.job_id, 0, failure(b!.ix_id));
    const before = await Promise.all([jobGet(db.pool, a!.job_id), jobGet(db.pool, b!.job_id)]);
    expect(await finishJob(db.pool, a!.job_id, 0, failure(a!.ix_id))).toBe(false);
    expect(await finishJob(db.pool, b!.job_id, 0, success(b!.ix_id))).toBe(false);
    expect(await finishJob(db.pool, a!.job_id, 0, success(a!.ix_id, 'again'))).toBe(false);
    expect(await Promise.all([jobGet(db.pool, a!.job_id), jobGet(db.pool, b!.job_id)])).toEqual(before);
  });

  it('a pending job cannot be completed', async () => {
    const [a] = await insertMany(1);
    expect(await finishJob(db.pool, a!.job_id, 0, success(a!.ix_id))).toBe(false);
    expect((await jobGet(db.pool, a!.job_id))?.status).toBe('pending');
  });

  it('fencing: after sweep and re-claim, the old attempt cannot complete but the new one can', async () => {
    const [job] = await insertMany(1);
    const first = await claimNextPending(db.pool);
    expect(first?.attempts).toBe(0);
    const future = new Date(Date.now() + 3_600_000);
    expect((await jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 60 })).requeued).toEqual([
      job!.job_id,
    ]);
    const second = await claimNextPending(db.pool);
    expect(second?.attempts).toBe(1);
    expect(await finishJob(db.pool, job!.job_id, 0, success(job!.ix_id, 'stale'))).toBe(false);
    expect(await finishJob(db.pool, job!.job_id, 1, success(job!.ix_id, 'fresh'))).toBe(true);
    const final = await jobGet(db.pool, job!.job_id);
    expect(final).toMatchObject({ status: 'done', attempts: 1, response: { result: 'fresh' } });
  });

  it('applies a batch in one statement and reports which outcomes applied', async () => {
    const jobs = await insertMany(4);
    await claimPending(db.pool, 3);
    const applied = await jobCompleteMany(
      db.pool,
      jobs.map((j) => ({ jobId: j.job_id, attempt: 0, response: success(j.ix_id), status: 'done' as const })),
    );
    expect(applied).toEqual(new Map(jobs.slice(0, 3).map((j) => [outcomeKey(j.job_id, 0), 'done'])));
    expect((await jobGet(db.pool, jobs[3]!.job_id))?.status).toBe('pending');
  });

  it("a batch's answer keeps each outcome in its place: applied, stale, unknown, retried, at the budget, twice in one batch", async () => {
    const [done, twice, retried, , failed] = await insertMany(5);
    const [lastTry] = admitted(
      await jobInsertMany(db.pool, [{ request: makeRequest(), callbackUrl: null, maxAttempts: 1 }]),
    );
    await claimPending(db.pool, 6);
    const outcome = (jobId: string, attempt: number, status: 'done' | 'error' | 'retry', ixId: string) => ({
      jobId,
      attempt,
      status,
      response: status === 'done' ? success(ixId) : failure(ixId, 'busy'),
      ...(status === 'retry' ? { retryInSeconds: 60 } : {}),
    });
    const unknown = '01000000-0000-7000-8000-000000000000';
    const outcomes = [
      outcome(done!.job_id, 0, 'done', done!.ix_id),
      outcome(twice!.job_id, 1, 'done', twice!.ix_id),
      outcome(retried!.job_id, 0, 'retry', retried!.ix_id),
      outcome(unknown, 0, 'done', '0123456789abcdef'),
      outcome(lastTry!.job.job_id, 0, 'retry', lastTry!.job.ix_id),
      outcome(failed!.job_id, 0, 'error', failed!.ix_id),
      outcome(twice!.job_id, 0, 'done', twice!.ix_id),
    ];
    const applied = await jobCompleteMany(db.pool, outcomes, { maxAttempts: 3 });
    expect(applied).toEqual(
      new Map([
        [outcomeKey(done!.job_id, 0), 'done'],
        [outcomeKey(retried!.job_id, 0), 'pending'],
        [outcomeKey(lastTry!.job.job_id, 0), 'error'],
        [outcomeKey(failed!.job_id, 0), 'error'],
        [outcomeKey(twice!.job_id, 0), 'done'],
      ]),
    );
    expect(await jobGet(db.pool, retried!.job_id)).toMatchObject({ status: 'pending', attempts: 1 });
    expect(await jobGet(db.pool, lastTry!.job.job_id)).toMatchObject({ status: 'error', attempts: 0 });
  });

  it('one batch mixing every column: a marked start and unmarked ones, a retry beside ends, limited or not', async () => {
    const worker = '00000000-0000-7000-8000-0000000000b1';
    await workerHeartbeat(db.pool, worker);
    await insertMany(3);
    const [marked, unmarked, retried] = await jobClaimMany(db.pool, {
      limit: 3,
      workerId: worker,
      startNow: 1,
    });
    expect([marked!.started, unmarked!.started, retried!.started]).toEqual([true, false, false]);
    const markedAt = (await jobGet(db.pool, marked!.job.job_id))!.started_at;
    expect(markedAt).not.toBeNull();
    const invokedAt = '2026-01-02T03:04:05.678Z';
    const outcome = (claimed: typeof marked) => ({
      jobId: claimed!.job.job_id,
      attempt: 0,
      claimEpoch: claimed!.claimEpoch,
      leaseId: claimed!.leaseId,
    });
    const applied = await jobCompleteMany(
      db.pool,
      [
        { ...outcome(marked), status: 'done', response: success(marked!.job.ix_id), limited: false },
        {
          ...outcome(unmarked),
          status: 'done',
          response: success(unmarked!.job.ix_id),
          startedAt: invokedAt,
        },
        {
          ...outcome(retried),
          status: 'retry',
          retryInSeconds: 60,
          response: failure(retried!.job.ix_id, 'busy'),
          startedAt: invokedAt,
          limited: false,
        },
      ],
      { workerId: worker, maxAttempts: 3 },
    );
    expect([...applied.values()]).toEqual(['done', 'done', 'pending']);
    const [a, b, c] = await Promise.all(
      [marked, unmarked, retried].map(async (claimed) => (await jobGet(db.pool, claimed!.job.job_id))!),
    );
    expect(a).toMatchObject({ status: 'done', started_at: markedAt });
    expect(b).toMatchObject({
      status: 'done',
      started_at: invokedAt,
      response: success(unmarked!.job.ix_id),
    });
    expect(b!.attempt_history).toEqual([
      expect.objectContaining({ worker_id: worker, started_at: invokedAt }),
    ]);
    expect(c).toMatchObject({ status: 'pending', attempts: 1, last_error: 'busy', started_at: null });
    expect(c!.attempt_history).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'retry', started_at: invokedAt, worker_id: worker }),
    ]);
    expect(Date.parse(c!.run_after!) - Date.now()).toBeGreaterThan(50_000);
    const { rows } = await db.pool.query<{ job_id: string }>('SELECT job_id FROM ix_job_queue');
    expect(rows).toEqual([{ job_id: retried!.job.job_id }]);
  });

  it('a retry goes back to pending within the budget, and ends the job error on its last attempt', async () => {
    // The budget: the job's own max_attempts, else the server's; with neither, retried forever.
    const cases = [
      { own: null, server: 3, attempts: 1, ends: false },
      { own: null, server: 3, attempts: 2, ends: true },
      { own: 5, server: 3, attempts: 2, ends: false },
      { own: 1, server: 3, attempts: 0, ends: true },
      { own: null, server: null, attempts: 99, ends: false },
    ];
    for (const { own, server, attempts, ends } of cases) {
      const { job } = await insertPending(db.pool, makeRequest(), null);
      await db.pool.query('UPDATE ix_jobs SET max_attempts = $2, attempts = $3 WHERE job_id = $1', [
        job.job_id,
        own,
        attempts,
      ]);
      await claimPending(db.pool, 1);
      const outcome = { jobId: job.job_id, attempt: attempts, status: 'retry' as const, retryInSeconds: 0 };
      const applied = await jobCompleteMany(db.pool, [{ ...outcome, response: failure(job.ix_id, 'busy') }], {
        maxAttempts: server,
      });
      const expected = ends ? 'error' : 'pending';
      expect(applied.get(outcomeKey(job.job_id, attempts)), JSON.stringify({ own, server, attempts })).toBe(
        expected,
      );
      const read = await jobGet(db.pool, job.job_id);
      expect(read).toMatchObject({ status: expected, attempts: ends ? attempts : attempts + 1 });
      expect(read!.attempt_history.at(-1)).toMatchObject({
        attempt: attempts + 1,
        outcome: ends ? 'error' : 'retry',
        error: 'busy',
      });
      if (!ends) await db.pool.query('DELETE FROM ix_job_queue');
    }
  });

  it('refuses an outcome whose status contradicts its response', async () => {
    await expect(
      jobCompleteMany(db.pool, [
        {
          jobId: '00000000-0000-7000-8000-000000000000',
          attempt: 0,
          response: success('0123456789abcdef'),
          status: 'error',
        },
      ]),
    ).rejects.toThrow(/contradicts/);
  });

  it('the database itself refuses a done job whose response carries an error', async () => {
    const [job] = await insertMany(1);
    await claimNextPending(db.pool);
    await expect(
      db.pool.query(
        `UPDATE ix_jobs SET status = 'done', finished_at = now(), response = '{"ix_id":"0123456789abcdef","error":"x","result":null}' WHERE job_id = $1`,
        [job!.job_id],
      ),
    ).rejects.toThrow(/ix_jobs_outcome_check/);
  });

  it('queues a callback delivery with the outcome, only for jobs with a callback URL', async () => {
    const { job: withUrl } = await insertPending(db.pool, makeRequest(), 'https://example.com/cb');
    const { job: without } = await insertPending(db.pool, makeRequest(), null);
    await claimPending(db.pool, 2);
    await finishJob(db.pool, withUrl.job_id, 0, success(withUrl.ix_id));
    await finishJob(db.pool, without.job_id, 0, success(without.ix_id));
    const { rows } = await db.pool.query('SELECT job_id FROM ix_callback_queue');
    expect(rows).toEqual([{ job_id: withUrl.job_id }]);
  });
});

describe('jobSweepOrphans', () => {
  it('touches only running rows older than the threshold; bumps attempts and clears started_at', async () => {
    const [stale, fresh, done, pending] = await insertMany(4);
    await claimPending(db.pool, 3);
    await finishJob(db.pool, done!.job_id, 0, success(done!.ix_id));
    await db.pool.query(`UPDATE ix_jobs SET started_at = now() - interval '2 hours' WHERE job_id = $1`, [
      stale!.job_id,
    ]);
    const untouched = [fresh, done, pending].map((j) => j!.job_id);
    const before = await Promise.all(untouched.map((id) => jobGet(db.pool, id)));
    const result = await jobSweepOrphans(db.pool, { maxRunningSeconds: 600 });
    expect(result).toEqual({ requeued: [stale!.job_id], returned: [], abandoned: [], cancelled: [] });
    expect(await jobGet(db.pool, stale!.job_id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      started_at: null,
    });
    expect(await Promise.all(untouched.map((id) => jobGet(db.pool, id)))).toEqual(before);
    // The swept job is claimable again, behind the job that was already waiting.
    expect((await claimPending(db.pool, 10)).map((j) => j.job_id)).toEqual([pending!.job_id, stale!.job_id]);
  });

  it('never touches pending or terminal rows, however old', async () => {
    const [finished, waiting] = await insertMany(2);
    await claimNextPending(db.pool);
    await finishJob(db.pool, finished!.job_id, 0, success(finished!.ix_id));
    const before = await Promise.all([finished, waiting].map((j) => jobGet(db.pool, j!.job_id)));
    const future = new Date(Date.now() + 365 * 86_400_000);
    expect(await jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 1 })).toEqual({
      requeued: [],
      returned: [],
      abandoned: [],
      cancelled: [],
    });
    expect(await Promise.all([finished, waiting].map((j) => jobGet(db.pool, j!.job_id)))).toEqual(before);
  });

  it('rescues the jobs of a worker whose heartbeat is stale, not those of a live worker', async () => {
    await insertMany(2);
    const live = '00000000-0000-7000-8000-00000000000a';
    const dead = '00000000-0000-7000-8000-00000000000b';
    await workerHeartbeat(db.pool, live);
    await workerHeartbeat(db.pool, dead);
    const [deadJob] = await claimPending(db.pool, 1, dead);
    const [liveJob] = await claimPending(db.pool, 1, live);
    await db.pool.query(
      `UPDATE ix_workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = $1`,
      [dead],
    );
    const result = await jobSweepOrphans(db.pool, { maxRunningSeconds: 3600, heartbeatTimeoutSeconds: 30 });
    expect(result.requeued).toEqual([deadJob!.job_id]);
    expect((await jobGet(db.pool, liveJob!.job_id))?.status).toBe('running');
    expect(await workerPruneStale(db.pool, 30)).toBe(1);
  });

  it('counts the live workers with each beat: the beating one, registering or not, and those beating within the window', async () => {
    const [first, second, silent] = ['0c', '0d', '0e'].map((n) => `00000000-0000-7000-8000-0000000000${n}`);
    expect((await workerHeartbeat(db.pool, first!, 30)).liveWorkers).toBe(1);
    expect((await workerHeartbeat(db.pool, second!, 30)).liveWorkers).toBe(2);
    await workerHeartbeat(db.pool, silent!, 30);
    expect((await workerHeartbeat(db.pool, first!, 30)).liveWorkers).toBe(3);
    await db.pool.query(
      `UPDATE ix_workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = $1`,
      [silent],
    );
    expect((await workerHeartbeat(db.pool, first!, 30)).liveWorkers).toBe(2);
    // Without a window, every registered worker counts, silent or not.
    expect((await workerHeartbeat(db.pool, first!)).liveWorkers).toBe(3);
  });

  it('abandons a job rescued maxAttempts times: error, with the count in the response', async () => {
    const { job } = await insertPending(db.pool, makeRequest(), 'https://example.com/cb');
    const future = new Date(Date.now() + 3_600_000);
    for (let attempt = 0; attempt < 3; attempt++) {
      const claimed = await claimNextPending(db.pool);
      expect(claimed?.attempts).toBe(attempt);
      const result = await jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 60, maxAttempts: 3 });
      expect(result[attempt < 2 ? 'requeued' : 'abandoned']).toEqual([job.job_id]);
    }
    const final = await jobGet(db.pool, job.job_id);
    expect(final).toMatchObject({
      status: 'error',
      attempts: 3,
      response: { ix_id: job.ix_id, result: null },
    });
    expect(final?.response?.error).toMatch(/abandoned after 3 attempts/);
    expect(await claimNextPending(db.pool)).toBeNull();
    const { rows } = await db.pool.query('SELECT job_id FROM ix_callback_queue');
    expect(rows).toEqual([{ job_id: job.job_id }]);
  });

  it('a job’s own max_attempts bounds its rescues too, instead of the sweep’s', async () => {
    const [inserted] = admitted(
      await jobInsertMany(db.pool, [{ request: makeRequest(), callbackUrl: null, maxAttempts: 1 }]),
    );
    const job = inserted!.job;
    await claimNextPending(db.pool);
    const future = new Date(Date.now() + 3_600_000);
    const result = await jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 60, maxAttempts: 3 });
    expect(result.abandoned).toEqual([job.job_id]);
    expect(await jobGet(db.pool, job.job_id)).toMatchObject({ status: 'error', attempts: 1 });
  });

  it('two sweepers at once rescue each job once', async () => {
    await insertMany(20);
    await claimPending(db.pool, 20);
    const future = new Date(Date.now() + 3_600_000);
    const [a, b] = await Promise.all([
      jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 60 }),
      jobSweepOrphans(db.pool, { now: future, maxRunningSeconds: 60 }),
    ]);
    expect(a.requeued.length + b.requeued.length).toBe(20);
    const { rows } = await db.pool.query('SELECT DISTINCT attempts FROM ix_jobs');
    expect(rows).toEqual([{ attempts: 1 }]);
  });
});

describe('jobReleaseMany', () => {
  it('puts held jobs back to pending at once, started or not, charging no attempt', async () => {
    const [a, b] = await insertMany(2);
    const [started, waiting] = await jobClaimMany(db.pool, { limit: 2, workerId: WORKER, startNow: 1 });
    const held = (c: typeof started, wasStarted: boolean) => ({
      jobId: c!.job.job_id,
      attempt: c!.job.attempts,
      claimEpoch: c!.claimEpoch,
      started: wasStarted,
    });
    const released = await jobReleaseMany(db.pool, [held(started, true), held(waiting, false)]);
    expect(released.sort()).toEqual([a!.job_id, b!.job_id].sort());
    expect(await jobGet(db.pool, a!.job_id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      started_at: null,
    });
    // The aborted run's outcome, recorded late, no longer applies: its claim was handed back.
    expect(await finishJob(db.pool, a!.job_id, 0, success(a!.ix_id))).toBe(false);
    expect(await jobGet(db.pool, b!.job_id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      started_at: null,
    });
    // Handed back: the stale claim can no longer start it.
    expect(await jobStartMany(db.pool, WORKER, [waiting!])).toEqual(new Map());
    expect((await claimPending(db.pool, 5)).map((j) => j.job_id)).toEqual([a!.job_id, b!.job_id]);
  });
});

describe('claimed, not started', () => {
  it('a claim starts only its oldest startNow jobs; the rest stay pending, leased, until started', async () => {
    const jobs = await insertMany(3);
    await workerHeartbeat(db.pool, WORKER);
    const claimed = await jobClaimMany(db.pool, { limit: 3, workerId: WORKER, startNow: 1 });
    expect(claimed.map((c) => [c.job.job_id, c.started])).toEqual([
      [jobs[0]!.job_id, true],
      [jobs[1]!.job_id, false],
      [jobs[2]!.job_id, false],
    ]);
    const first = await jobGet(db.pool, jobs[0]!.job_id);
    expect(first).toMatchObject({
      status: 'running',
      attempt_history: [{ worker_id: WORKER, finished_at: null }],
    });
    expect(first!.started_at).not.toBeNull();
    expect(await jobGet(db.pool, jobs[1]!.job_id)).toMatchObject({ status: 'pending', started_at: null });
    // Nobody else can claim them meanwhile.
    expect(await claimPending(db.pool, 5)).toEqual([]);
    const started = await jobStartMany(db.pool, WORKER, [claimed[1]!]);
    expect([...started.keys()]).toEqual([jobs[1]!.job_id]);
    expect(await jobGet(db.pool, jobs[1]!.job_id)).toMatchObject({
      status: 'running',
      started_at: started.get(jobs[1]!.job_id),
    });
    // Starting twice (a retry whose first answer was lost) changes nothing.
    expect(await jobStartMany(db.pool, WORKER, [claimed[1]!])).toEqual(started);
  });

  it('the sweep charges a dead worker only for what it had started, and hands back the rest as they were', async () => {
    const jobs = await insertMany(4);
    await workerHeartbeat(db.pool, WORKER);
    const claimed = await jobClaimMany(db.pool, { limit: 4, workerId: WORKER, startNow: 2 });
    const result = await jobSweepOrphans(db.pool, {
      now: new Date(Date.now() + 3_600_000),
      maxRunningSeconds: 60,
      heartbeatTimeoutSeconds: 30,
      maxAttempts: 3,
    });
    expect(result.requeued.sort()).toEqual([jobs[0]!.job_id, jobs[1]!.job_id].sort());
    expect(result.returned.sort()).toEqual([jobs[2]!.job_id, jobs[3]!.job_id].sort());
    expect(result.abandoned).toEqual([]);
    const after = await Promise.all(jobs.map((j) => jobGet(db.pool, j.job_id)));
    expect(after.map((j) => [j?.status, j?.attempts])).toEqual([
      ['pending', 1],
      ['pending', 1],
      ['pending', 0],
      ['pending', 0],
    ]);
    // The dead worker's stale claims start nothing, even when the same worker claims them again;
    // the two it was running count a rescue, and a claim does not start them with others.
    // (The sweep requeues in job_id order, which is not always creation order within one
    // millisecond: compare by id.)
    const again = await jobClaimMany(db.pool, { limit: 4, workerId: WORKER, startNow: 4 });
    const byId = (a: readonly unknown[], b: readonly unknown[]) => String(a[0]).localeCompare(String(b[0]));
    expect(again.map((c) => [c.job.job_id, c.rescues, c.started]).sort(byId)).toEqual(
      [
        [jobs[0]!.job_id, 1, false],
        [jobs[1]!.job_id, 1, false],
        [jobs[2]!.job_id, 0, true],
        [jobs[3]!.job_id, 0, true],
      ].sort(byId),
    );
    expect(await jobStartMany(db.pool, WORKER, [claimed[2]!, claimed[3]!])).toEqual(new Map());
    const rescued = again.filter((c) => c.rescues > 0);
    expect((await jobStartMany(db.pool, WORKER, rescued)).size).toBe(2);
  });

  it("a stopping worker's release counts no rescue and no attempt", async () => {
    const [job] = await insertMany(1);
    const [claimed] = await jobClaimMany(db.pool, { limit: 1, workerId: WORKER, startNow: 1 });
    await jobReleaseMany(db.pool, [
      { jobId: job!.job_id, attempt: 0, claimEpoch: claimed!.claimEpoch, started: true },
    ]);
    const [again] = await jobClaimMany(db.pool, { limit: 1, workerId: WORKER, startNow: 1 });
    expect(again).toMatchObject({ rescues: 0, started: true, claimEpoch: 1, job: { attempts: 0 } });
  });

  it("the age rule leaves a live worker's unstarted claims alone", async () => {
    await insertMany(2);
    await workerHeartbeat(db.pool, WORKER);
    await jobClaimMany(db.pool, { limit: 2, workerId: WORKER, startNow: 0 });
    const later = new Date(Date.now() + 3_600_000);
    await db.pool.query('UPDATE ix_workers SET heartbeat_at = $1', [later]);
    const result = await jobSweepOrphans(db.pool, {
      now: later,
      maxRunningSeconds: 60,
      heartbeatTimeoutSeconds: 30,
    });
    expect(result).toEqual({ requeued: [], returned: [], abandoned: [], cancelled: [] });
  });

  it('a claim stops at its byte budget of stored input, but always takes one job', async () => {
    const big = { text: 'x'.repeat(3_000) };
    for (let i = 0; i < 4; i++) await insertPending(db.pool, makeRequest({ input: big }), null);
    const one = await jobClaimMany(db.pool, { limit: 4, workerId: null, startNow: 4, maxInputBytes: 1 });
    expect(one).toHaveLength(1);
    const size = one[0]!.inputBytes;
    expect(size).toBeGreaterThan(0);
    const two = await jobClaimMany(db.pool, {
      limit: 4,
      workerId: null,
      startNow: 4,
      maxInputBytes: size + 1,
    });
    expect(two).toHaveLength(2);
    expect(
      await jobClaimMany(db.pool, { limit: 4, workerId: null, startNow: 4, maxInputBytes: null }),
    ).toHaveLength(1);
  });
});

describe('jobInsertMany in batches', () => {
  it('inserts a batch in one statement, in order; replays get the first job, conflicts fail alone', async () => {
    const known = await insertPending(db.pool, makeRequest(), 'https://known.example.com/cb');
    const fresh = [makeRequest(), makeRequest(), makeRequest()];
    const results = admitted(
      await jobInsertMany(db.pool, [
        { request: fresh[0]!, callbackUrl: null },
        { request: known.job.request, callbackUrl: 'https://known.example.com/cb' },
        { request: fresh[1]!, callbackUrl: 'https://example.com/1' },
        {
          request: { ...fresh[1]!, input: 'a conflict inside the batch' },
          callbackUrl: 'https://example.com/1',
        },
        { request: known.job.request, callbackUrl: 'https://other.example.com/cb' },
        { request: fresh[1]!, callbackUrl: 'https://example.com/1' },
        { request: fresh[2]!, callbackUrl: null },
      ]),
    );
    expect(results.map((r) => r.created)).toEqual([true, false, true, false, false, false, true]);
    expect(results.map((r) => r.conflict?.jobId ?? null)).toEqual([
      null,
      null,
      null,
      results[2]!.job.job_id,
      known.job.job_id,
      null,
      null,
    ]);
    expect(results[1]!.job).toEqual(known.job);
    expect(results[4]!.job).toEqual(known.job);
    expect(results[3]!.job).toEqual(results[2]!.job);
    expect(results[5]!.job).toEqual(results[2]!.job);
    expect(results[3]!.job.request.input).toEqual(fresh[1]!.input);
    const claimed = await claimPending(db.pool, 10);
    expect(claimed.map((j) => j.request_id)).toEqual([
      known.job.request_id,
      fresh[0]!.request_id,
      fresh[1]!.request_id,
      fresh[2]!.request_id,
    ]);
  });

  it('each job it creates is returned as it reads back: scheduled, delayed, budgeted, urgent, with or without callback and input', async () => {
    const ahead = new Date(Date.now() + 3_600_000).toISOString();
    const past = new Date(Date.now() - 3_600_000).toISOString();
    const submissions = [
      { request: makeRequest(), callbackUrl: null },
      { request: makeRequest({ input: null }), callbackUrl: 'https://example.com/cb' },
      { request: makeRequest(), callbackUrl: null, runAfter: ahead, maxAttempts: 3, priority: 9 },
      { request: makeRequest(), callbackUrl: null, runAfter: past },
      { request: makeRequest(), callbackUrl: null, delaySeconds: 90.25, priority: 4 },
      { request: makeRequest(), callbackUrl: null, delaySeconds: 0 },
    ];
    const results = admitted(await jobInsertMany(db.pool, submissions));
    expect(results.map((r) => r.created)).toEqual(submissions.map(() => true));
    for (const { job } of results) expect(await jobGet(db.pool, job.job_id)).toEqual(job);
    expect(results.map((r) => r.job.run_after !== null)).toEqual([false, false, true, false, true, false]);
    expect(results[2]!.job.run_after).toBe(ahead);
  });

  it('an empty batch does nothing', async () => {
    expect(await jobInsertMany(db.pool, [])).toEqual([]);
  });
});
