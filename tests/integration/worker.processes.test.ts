/**
 * Workers as separate processes (the built `ix worker`), each with its own pool, as they run
 * in production: exactly once per attempt across processes, and rescue after kill -9.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestIX } from '../../src/contracts/index.js';
import { jobGet, jobNotifyPending } from '../../src/store/index.js';
import { Sweeper } from '../../src/worker/index.js';
import { CLI, cleanEnv, exited } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { startServer } from '../support/http.js';
import { insertPending } from '../support/jobs.js';
import {
  eventually,
  makeWorker,
  silentLogger,
  statusCounts,
  submitMany,
  workerConfig,
} from '../support/worker.js';

const db = useTestDatabase();
const children: ChildProcess[] = [];

function spawnWorker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'worker'], {
    env: cleanEnv({ IX_POSTGRES_URL: db.url, ...env }),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  }
});

describe('worker processes', () => {
  it('3 worker processes over 600 jobs through the http pipeline: each job is sent exactly once', async () => {
    const calls = new Map<string, number>();
    const counter = await startServer((_req, res, body) => {
      const request = JSON.parse(body) as RequestIX;
      calls.set(request.request_id, (calls.get(request.request_id) ?? 0) + 1);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ echoed: request.request_id }));
    });
    try {
      await submitMany(db.pool, 600);
      const workers = [1, 2, 3].map(() =>
        spawnWorker({ IX_PIPELINE: 'http', IX_PIPELINE_URL: counter.url, IX_WORKER_CONCURRENCY: '8' }),
      );
      await eventually(async () => (await statusCounts(db.pool)).done === 600, 'all 600 jobs done', 60_000);
      for (const w of workers) w.kill('SIGTERM');
      expect(await Promise.all(workers.map(exited))).toEqual([0, 0, 0]);
    } finally {
      await counter.close();
    }
    expect(calls.size).toBe(600);
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    const { rows } = await db.pool.query(`SELECT count(DISTINCT worker_id)::int AS n FROM ix_jobs`);
    expect(rows[0].n).toBeGreaterThan(1);
  }, 90_000);

  it('kill -9 of a worker holding jobs: another worker finishes them after the heartbeat timeout, attempt 1', async () => {
    const ids = await submitMany(db.pool, 5, { sleep_ms: 600_000 });
    const doomed = spawnWorker({ IX_WORKER_CONCURRENCY: '10' });
    await eventually(
      async () => (await statusCounts(db.pool)).running === 5,
      'the doomed worker runs all five',
    );
    doomed.kill('SIGKILL');
    await exited(doomed);

    const config = workerConfig({ heartbeatIntervalSeconds: 1, heartbeatTimeoutSeconds: 2 });
    const sweeper = new Sweeper(db.pool, config, silentLogger);
    // Within the timeout the dead worker's jobs are left alone...
    expect((await sweeper.runOnce()).requeued).toEqual([]);
    // ...and past it (clock injected instead of sleeping) they are rescued, once.
    const later = new Date(Date.now() + 3_000);
    expect((await sweeper.runOnce(later)).requeued.sort()).toEqual([...ids].sort());
    expect((await sweeper.runOnce(later)).requeued).toEqual([]);

    const finished: string[] = [];
    const rescuer = makeWorker(db, async (request) => {
      finished.push(request.request_id);
      return { result: 'second time lucky' };
    });
    expect(await rescuer.runOnce()).toBe(5);
    expect(finished).toHaveLength(5);
    const { rows } = await db.pool.query(`SELECT status, attempts FROM ix_jobs`);
    expect(rows).toEqual(Array.from({ length: 5 }, () => ({ status: 'done', attempts: 1 })));
    // Each history tells the lost run from the one that finished the job, and whose each was.
    for (const id of ids) {
      const history = (await jobGet(db.pool, id))!.attempt_history;
      expect(history.map((run) => [run.attempt, run.outcome, run.error])).toEqual([
        [1, 'worker_lost', 'worker lost: it stopped sending heartbeats'],
        [2, 'done', null],
      ]);
      expect(history[0]!.worker_id).not.toBe(rescuer.workerId);
      expect(history[0]!.worker_id).not.toBeNull();
      expect(history[1]!.worker_id).toBe(rescuer.workerId);
    }
  }, 60_000);

  it('a pipeline that kills its worker charges only the jobs started with it, never prefetched ones, and is abandoned after its budget', async () => {
    // Concurrency 2, prefetch 20: one claim takes all 21 jobs, two start, the rest wait.
    const dir = mkdtempSync(join(tmpdir(), 'ix-crash-'));
    const starts = join(dir, 'starts.log');
    const pipelineFile = join(dir, 'crash-pipeline.mjs');
    writeFileSync(starts, '');
    writeFileSync(
      pipelineFile,
      `import { appendFileSync } from 'node:fs';
export default async function crashOnPoison(request) {
  appendFileSync(${JSON.stringify(starts)}, request.request_id + '\\n');
  // The crash comes while the pipeline works, as an OOM or a native fault would.
  if (request.input && request.input.poison) setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
  // The others take long enough that claimed jobs still wait in the buffer when the worker dies.
  await new Promise((resolve) => setTimeout(resolve, request.input && request.input.poison ? 60000 : 100));
  return { result: { ok: true } };
}
`,
    );
    try {
      await submitMany(db.pool, 10);
      const [poison] = await submitMany(db.pool, 1, { poison: true });
      await submitMany(db.pool, 10);
      const sweeper = new Sweeper(db.pool, workerConfig({ maxAttempts: 3 }), silentLogger);
      let crashes = 0;
      for (let round = 0; round < 6; round++) {
        const counts = await statusCounts(db.pool);
        if ((counts.done ?? 0) + (counts.error ?? 0) === 21) break;
        const worker = spawnWorker({
          IX_PIPELINE: pipelineFile,
          IX_WORKER_CONCURRENCY: '2',
          IX_WORKER_PREFETCH: '20',
          IX_MAX_ATTEMPTS: '3',
        });
        const finishedOrDied = await Promise.race([
          exited(worker).then(() => 'died' as const),
          eventually(
            async () => {
              const now = await statusCounts(db.pool);
              return (now.done ?? 0) + (now.error ?? 0) === 21;
            },
            'all finished',
            30_000,
          ).then(() => 'finished' as const),
        ]);
        if (finishedOrDied === 'finished') {
          worker.kill('SIGTERM');
          await exited(worker);
          break;
        }
        crashes += 1;
        // The dead worker's heartbeat is stale by the injected clock: rescue now.
        await sweeper.runOnce(new Date(Date.now() + 120_000));
      }
      expect(crashes).toBe(3);
      const startsOf = new Map<string, number>();
      for (const id of readFileSync(starts, 'utf8').split('\n').filter(Boolean))
        startsOf.set(id, (startsOf.get(id) ?? 0) + 1);
      const { rows } = await db.pool.query<{
        job_id: string;
        request_id: string;
        status: string;
        attempts: number;
      }>('SELECT job_id, request_id, status, attempts FROM ix_jobs');
      const poisonRow = rows.find((row) => row.job_id === poison)!;
      expect(poisonRow).toMatchObject({ status: 'error', attempts: 3 });
      expect(startsOf.get(poisonRow.request_id)).toBe(3);
      expect((await jobGet(db.pool, poison!))?.response?.error).toMatch(/abandoned after 3 attempts/);
      const others = rows.filter((row) => row.job_id !== poison);
      expect(others.every((row) => row.status === 'done')).toBe(true);
      // A crash charges only jobs whose pipeline had started, never the prefetched ones waiting
      // in the buffer: a done job was charged at most once for each of its starts but the last,
      // which succeeded. (Not at most the concurrency a crash: a run that finished frees its slot
      // at once, and its outcome may still wait for the next write when the worker dies; a full
      // suite's load once charged 11 over 3 crashes so.)
      for (const row of others) {
        expect(row.attempts, row.request_id).toBeLessThanOrEqual((startsOf.get(row.request_id) ?? 0) - 1);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('ix worker delivers the callback of a finished job, signed, right after recording it', async () => {
    const received: { headers: Record<string, unknown>; body: string }[] = [];
    const receiver = await startServer((req, res, body) => {
      received.push({ headers: req.headers, body });
      res.end('ok');
    });
    try {
      const { job } = await insertPending(
        db.pool,
        makeRequest({ input: { page: 7 } }),
        `${receiver.url}/hook`,
      );
      await jobNotifyPending(db.pool);
      const worker = spawnWorker({
        IX_CALLBACK_ALLOW_PRIVATE: 'true',
        IX_CALLBACK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
      });
      await eventually(
        async () => (await jobGet(db.pool, job.job_id))?.callback_status === 'delivered',
        'delivered',
      );
      worker.kill('SIGTERM');
      expect(await exited(worker)).toBe(0);
      expect(received).toHaveLength(1);
      expect(received[0]!.headers['webhook-id']).toBeTruthy();
      expect(received[0]!.headers['webhook-signature']).toMatch(/^v1,/);
      expect(JSON.parse(received[0]!.body)).toMatchObject({ job_id: job.job_id, status: 'done' });
    } finally {
      await receiver.close();
    }
  }, 30_000);
});
