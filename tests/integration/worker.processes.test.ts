/**
 * Workers as separate processes (the built `ix worker`), each with its own pool, as they run
 * in production: exactly once per attempt across processes, and rescue after kill -9.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestIX } from '../../src/contracts/index.js';
import { get, insertPending, notifyPending } from '../../src/store/index.js';
import { Sweeper } from '../../src/worker/index.js';
import { CLI, cleanEnv, exited } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { startServer } from '../support/http.js';
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
  }, 60_000);

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
      await notifyPending(db.pool);
      const worker = spawnWorker({
        IX_CALLBACK_ALLOW_PRIVATE: 'true',
        IX_CALLBACK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
      });
      await eventually(
        async () => (await get(db.pool, job.job_id))?.callback_status === 'delivered',
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
