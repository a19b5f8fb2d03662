/**
 * Retries with backoff and scheduled runs, on a real PostgreSQL and a real HTTP service: which
 * failures run again, when, and how often (IX_MAX_ATTEMPTS), driven step by step with runOnce.
 */
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  jobGet,
  jobInsertMany,
  jobNotifyPending,
  jobSweepOrphans,
  type Submission,
} from '../../src/store/index.js';
import { httpPipeline } from '../../src/worker/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { startServer, type TestServer } from '../support/http.js';
import { admitted, claimPending } from '../support/jobs.js';
import { captureLogs } from '../support/logs.js';
import { eventually, makeWorker } from '../support/worker.js';

const db = useTestDatabase();
const ROOMY_LIMIT = 1_000_000;
/** Tiny, so that waiting out a backoff takes milliseconds. */
const BASE_SECONDS = 0.05;

let server: TestServer | null = null;
/** The status each request is answered with, in turn; the last one repeats. */
let answers: { status: number; headers?: Record<string, string> }[] = [];
let served: number[] = [];

beforeEach(async () => {
  served = [];
  server = await startServer((_req, res) => {
    const answer = answers[Math.min(served.length, answers.length - 1)]!;
    served.push(Date.now());
    res.statusCode = answer.status;
    for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
    res.setHeader('content-type', 'application/json');
    res.end(answer.status < 300 ? '{"ok":true}' : 'busy');
  });
});
afterEach(async () => {
  await server?.close();
  server = null;
});

async function submit(extra: Partial<Submission> = {}): Promise<string> {
  const [inserted] = admitted(
    await jobInsertMany(db.pool, [{ request: makeRequest(), callbackUrl: null, ...extra }]),
  );
  return inserted!.job.job_id;
}

function retryingWorker(url: string, overrides: Parameters<typeof makeWorker>[2] = {}, logger?: Logger) {
  return makeWorker(
    db,
    httpPipeline(url, ROOMY_LIMIT),
    { retryBaseSeconds: BASE_SECONDS, retryMaxSeconds: 3_600, ...overrides },
    logger,
  );
}

/** runOnce until it claims a job, as a worker's poll would. */
async function runWhenDue(worker: ReturnType<typeof makeWorker>): Promise<void> {
  await eventually(async () => (await worker.runOnce()) > 0, 'a job became due and ran', 5_000);
}

describe('retries', () => {
  it('an http pipeline answering 503 twice, then 200, ends done after 3 runs, each wait within the backoff', async () => {
    answers = [{ status: 503 }, { status: 503 }, { status: 200 }];
    const id = await submit();
    const worker = retryingWorker(server!.url);
    expect(await worker.runOnce()).toBe(1);
    for (const attempt of [1, 2]) {
      const waiting = await jobGet(db.pool, id);
      expect(waiting).toMatchObject({ status: 'pending', attempts: attempt, started_at: null });
      expect(waiting?.last_error).toContain('HTTP 503');
      // Full jitter: anywhere from the failure to base × 2^(attempt − 1) after it was recorded.
      const due = Date.parse(waiting!.run_after ?? new Date().toISOString());
      expect(due).toBeGreaterThanOrEqual(served.at(-1)!);
      expect(due).toBeLessThanOrEqual(Date.now() + BASE_SECONDS * 1000 * 2 ** (attempt - 1));
      await runWhenDue(worker);
      // Not run before it was due (a millisecond for the timestamps' rounding).
      expect(served[attempt]!).toBeGreaterThanOrEqual(due - 1);
    }
    expect(served).toHaveLength(3);
    const done = await jobGet(db.pool, id);
    expect(done).toMatchObject({ status: 'done', attempts: 2, run_after: null });
    // The history: two retried failures, then the run that ended the job, all on this worker.
    const history = done!.attempt_history;
    expect(history.map((run) => [run.attempt, run.outcome])).toEqual([
      [1, 'retry'],
      [2, 'retry'],
      [3, 'done'],
    ]);
    for (const run of history) {
      expect(run.worker_id).toBe(worker.workerId);
      expect(run.duration_ms).toBe(Date.parse(run.finished_at!) - Date.parse(run.started_at));
    }
    expect(history[0]!.error).toContain('HTTP 503');
    expect(history[1]!.error).toContain('HTTP 503');
    expect(history[2]).toMatchObject({ error: null, retry_at: null, started_at: done!.started_at });
    // Each gap respects the backoff: a run starts no earlier than its predecessor's retry_at,
    // which lies within base × 2^(attempt − 1) of that predecessor's end.
    for (const [i, failed] of history.slice(0, 2).entries()) {
      const retryAt = Date.parse(failed.retry_at!);
      expect(retryAt).toBeGreaterThanOrEqual(Date.parse(failed.finished_at!));
      expect(retryAt - Date.parse(failed.finished_at!)).toBeLessThanOrEqual(BASE_SECONDS * 1000 * 2 ** i + 1);
      expect(Date.parse(history[i + 1]!.started_at)).toBeGreaterThanOrEqual(retryAt);
    }
  });

  it('a 400 ends error after one run', async () => {
    answers = [{ status: 400 }];
    const id = await submit();
    await retryingWorker(server!.url).runOnce();
    expect(served).toHaveLength(1);
    const job = await jobGet(db.pool, id);
    expect(job).toMatchObject({ status: 'error', attempts: 0 });
    expect(job!.attempt_history).toEqual([expect.objectContaining({ attempt: 1, outcome: 'error' })]);
    expect(job!.attempt_history[0]!.error).toContain('HTTP 400');
  });

  it('retryable failures beyond the budget end error with the last error', async () => {
    answers = [{ status: 500 }, { status: 502 }, { status: 503 }];
    const id = await submit();
    const logs = captureLogs();
    const worker = retryingWorker(server!.url, { maxAttempts: 3 }, logs.logger);
    await worker.runOnce();
    await runWhenDue(worker);
    await runWhenDue(worker);
    expect(served).toHaveLength(3);
    // The log says what was recorded: two retries, then the end, each about this job.
    await eventually(async () => logs.entries().some((e) => e.msg === 'job ended in error'), 'the last line');
    const lines = logs.entries().filter((e) => e.job_id === id && String(e.msg).startsWith('job '));
    expect(lines.map((e) => [e.msg, e.attempt])).toEqual([
      ['job failed; retrying', 0],
      ['job failed; retrying', 1],
      ['job ended in error', 2],
    ]);
    const job = await jobGet(db.pool, id);
    expect(job).toMatchObject({ status: 'error', run_after: null });
    expect(job?.response?.error).toContain('HTTP 503');
    expect(job!.attempt_history.map((run) => [run.attempt, run.outcome, run.error])).toEqual([
      [1, 'retry', expect.stringContaining('HTTP 500')],
      [2, 'retry', expect.stringContaining('HTTP 502')],
      [3, 'error', job?.response?.error],
    ]);
    expect(await worker.runOnce()).toBe(0);
  });

  it('one budget bounds retries and rescues together', async () => {
    answers = [{ status: 503 }];
    const id = await submit();
    const worker = retryingWorker(server!.url, { maxAttempts: 3 });
    await worker.runOnce();
    // Its second run is on a worker that dies: the sweep rescues it, charging the second attempt.
    await eventually(
      async () => (await claimPending(db.pool, 1)).length === 1,
      'the job is due again',
      5_000,
    );
    const later = new Date(Date.now() + 3_600_000);
    expect(
      (await jobSweepOrphans(db.pool, { now: later, maxRunningSeconds: 1, maxAttempts: 3 })).requeued,
    ).toEqual([id]);
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'pending', attempts: 2 });
    // The third run fails retryably: the budget is spent, so it ends the job.
    await runWhenDue(worker);
    expect(served).toHaveLength(2);
    const job = await jobGet(db.pool, id);
    expect(job).toMatchObject({ status: 'error', attempts: 2 });
    expect(job?.response?.error).toContain('HTTP 503');
    // The rescue is a run of its own in the history, and says why it ended.
    expect(job!.attempt_history.map((run) => [run.attempt, run.outcome])).toEqual([
      [1, 'retry'],
      [2, 'worker_lost'],
      [3, 'error'],
    ]);
    expect(job!.attempt_history[1]).toMatchObject({
      worker_id: null,
      error: 'worker lost: the run took over 1 s, the longest a run may take',
    });
  });

  it('a job may ask for a smaller budget than IX_MAX_ATTEMPTS', async () => {
    answers = [{ status: 503 }];
    const id = await submit({ maxAttempts: 1 });
    await retryingWorker(server!.url, { maxAttempts: 3 }).runOnce();
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'error', max_attempts: 1 });
  });

  it('honours Retry-After: the next run is due that many seconds later', async () => {
    answers = [{ status: 429, headers: { 'retry-after': '2' } }];
    const id = await submit();
    await retryingWorker(server!.url).runOnce();
    const job = await jobGet(db.pool, id);
    expect(job?.status).toBe('pending');
    expect(Date.parse(job!.run_after!) - served[0]!).toBeGreaterThan(1_800);
    expect(Date.parse(job!.run_after!) - served[0]!).toBeLessThan(2_500);
  });

  it('connection refused, then the service comes up: done', async () => {
    answers = [{ status: 200 }];
    const url = server!.url;
    await server!.close();
    const id = await submit();
    const worker = retryingWorker(url);
    await worker.runOnce();
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'pending', attempts: 1 });
    // Up again on the same port: the pipeline's URL is fixed.
    const revived = createServer((_req, res) => {
      served.push(Date.now());
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => revived.listen(Number(new URL(url).port), '127.0.0.1', resolve));
    server = {
      url,
      server: revived,
      close: () => new Promise((resolve) => revived.close(() => resolve())),
    };
    await runWhenDue(worker);
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'done', attempts: 1 });
  });
});

describe('scheduled runs', () => {
  it('a job with run_after in the future is not claimed early, and is claimed once due', async () => {
    answers = [{ status: 200 }];
    const runAfter = new Date(Date.now() + 600).toISOString();
    const id = await submit({ runAfter });
    expect((await jobGet(db.pool, id))?.run_after).toBe(runAfter);
    const worker = retryingWorker(server!.url);
    expect(await worker.runOnce()).toBe(0);
    await runWhenDue(worker);
    expect(served[0]!).toBeGreaterThanOrEqual(Date.parse(runAfter));
    expect(await jobGet(db.pool, id)).toMatchObject({ status: 'done', attempts: 0 });
  });

  it('an idle worker runs a scheduled job once it is due, without a NOTIFY or a poll', async () => {
    answers = [{ status: 200 }];
    const worker = retryingWorker(server!.url, { pollIntervalMs: 600_000 });
    await worker.start();
    try {
      const id = await submit({ delaySeconds: 0.5 });
      await jobNotifyPending(db.pool);
      const runAfter = Date.parse((await jobGet(db.pool, id))!.run_after!);
      await eventually(async () => (await jobGet(db.pool, id))?.status === 'done', 'the job is done', 5_000);
      expect(served[0]! - runAfter).toBeGreaterThanOrEqual(-1);
      expect(served[0]! - runAfter).toBeLessThan(1_000);
    } finally {
      await worker.stop();
    }
  });

  it('delay_seconds schedules a job that far ahead', async () => {
    const before = Date.now();
    const id = await submit({ delaySeconds: 30 });
    const job = await jobGet(db.pool, id);
    expect(Date.parse(job!.run_after!) - before).toBeGreaterThanOrEqual(29_000);
    expect(await retryingWorker(server!.url).runOnce()).toBe(0);
  });
});
