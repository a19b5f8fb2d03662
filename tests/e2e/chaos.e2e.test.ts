/**
 * Chaos, as production meets it: three `ix worker` processes and an `ix api` process on a
 * PostgreSQL of the test's own, a stream of submits over HTTP, jobs whose pipeline kills its
 * worker and jobs whose result cannot be stored, one restart of PostgreSQL mid-stream and one
 * kill -9 of a worker. Dead workers are started again, as a supervisor would. At the end every
 * acknowledged submit exists, every ordinary job is done and ran once per attempt, only the
 * poison jobs ended error, and nothing is stuck.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/cli/embedded-postgres.js';
import { IxClient } from '../../src/client/index.js';
import { createPool } from '../../src/store/index.js';
import { CLI, cleanEnv, exited, type RunningIx, startIx } from '../support/cli.js';
import { heldJobCount } from '../support/db.js';
import { eventually } from '../support/worker.js';

const ORDINARY = 240;
const CRASHING = 3;
const UNSTORABLE = 3;
const WORKERS = 3;

const dir = mkdtempSync(join(tmpdir(), 'ix-chaos-'));
// The server's own directory: as root, the postgres user must be able to reach it.
const dataDir = mkdtempSync(join(tmpdir(), 'ix-chaos-pg-'));
const calls = join(dir, 'calls.log');
const pipelineFile = join(dir, 'chaos-pipeline.mjs');
writeFileSync(calls, '');
writeFileSync(
  pipelineFile,
  `import { appendFileSync } from 'node:fs';
export default async function chaos(request, ctx) {
  appendFileSync(${JSON.stringify(calls)}, request.request_id + ' ' + ctx.attempt + '\\n');
  const kind = request.input && request.input.kind;
  // The crash comes while the pipeline works, as an OOM or a native fault would.
  if (kind === 'crash') setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50);
  await new Promise((resolve) => setTimeout(resolve, kind === 'crash' ? 60000 : 10 + Math.random() * 40));
  if (kind === 'unstorable') return { result: { text: 'page one\\u0000page two' } };
  return { result: { ok: request.request_id } };
}
`,
);

let server: EmbeddedPostgres | null = null;
const workers = new Set<ChildProcess>();
let api: RunningIx | null = null;
let supervising = true;
let deaths = 0;

afterAll(async () => {
  supervising = false;
  for (const worker of workers) worker.kill('SIGKILL');
  await Promise.all([...workers].map(exited));
  await api?.stop('SIGKILL');
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

function spawnWorker(url: string): ChildProcess {
  const worker = spawn(process.execPath, [CLI, 'worker'], {
    env: cleanEnv({
      IX_POSTGRES_URL: url,
      IX_PIPELINE: pipelineFile,
      IX_WORKER_CONCURRENCY: '4',
      IX_WORKER_PREFETCH: '8',
      IX_WORKER_POLL_INTERVAL_MS: '500',
      IX_HEARTBEAT_INTERVAL_SECONDS: '1',
      IX_HEARTBEAT_TIMEOUT_SECONDS: '3',
      IX_SWEEP_INTERVAL_SECONDS: '1',
      IX_MAX_ATTEMPTS: '3',
      IX_LOG_LEVEL: 'silent',
    }),
    stdio: 'ignore',
  });
  workers.add(worker);
  // A supervisor's restart, a moment after a worker dies.
  worker.once('exit', () => {
    workers.delete(worker);
    if (supervising) deaths += 1;
    if (supervising) setTimeout(() => supervising && spawnWorker(url), 200);
  });
  return worker;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('chaos', () => {
  it('survives crashing pipelines, unstorable results, a PostgreSQL restart and a kill -9', async () => {
    const started = Date.now();
    server = await startEmbeddedPostgres({ dataDir });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE ix_chaos');
    await admin.end();
    const url = server.urlFor('ix_chaos');
    const migrate = spawn(process.execPath, [CLI, 'migrate', 'up'], {
      env: cleanEnv({ IX_POSTGRES_URL: url }),
    });
    expect(await exited(migrate)).toBe(0);

    api = await startIx({ IX_POSTGRES_URL: url, IX_LOG_LEVEL: 'silent' }, 'api');
    for (let i = 0; i < WORKERS; i++) spawnWorker(url);
    const client = new IxClient({ baseUrl: api.address, timeoutMs: 5_000 });

    // Every kind of job, shuffled into one stream.
    const kinds = [
      ...Array.from({ length: ORDINARY }, () => 'ordinary'),
      ...Array.from({ length: CRASHING }, () => 'crash'),
      ...Array.from({ length: UNSTORABLE }, () => 'unstorable'),
    ].sort(() => Math.random() - 0.5);
    const kindOf = new Map<string, string>();
    const acknowledged = new Set<string>();
    let failedSubmits = 0;

    // Submits until acknowledged: the same request id again after any failure (idempotent).
    const submitAll = async (lane: number) => {
      for (let i = lane; i < kinds.length; i += 4) {
        const requestId = `chaos-${i}-${randomUUID()}`;
        kindOf.set(requestId, kinds[i]!);
        for (;;) {
          try {
            await client.submit({ ix_client_id: 'chaos', request_id: requestId, input: { kind: kinds[i]! } });
            acknowledged.add(requestId);
            break;
          } catch {
            failedSubmits += 1;
            await sleep(100);
          }
        }
        await sleep(20);
      }
    };
    const stream = Promise.all([0, 1, 2, 3].map(submitAll));

    // Mid-stream: restart PostgreSQL, then kill -9 a worker.
    await sleep(2_000);
    const restartBegan = Date.now();
    await server.stop();
    await sleep(1_000);
    server = await startEmbeddedPostgres({ dataDir, port: server.port });
    const restartEnded = Date.now();
    const pool = createPool(url, { max: 2 });
    try {
      const doneNow = async () =>
        (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'done'"))
          .rows[0]!.n;
      const doneAtRestart = await doneNow();
      await eventually(
        async () => (await doneNow()) > doneAtRestart,
        'a job finished after the restart',
        30_000,
      );
      const recoveredMs = Date.now() - restartEnded;

      await sleep(1_000);
      const victim = [...workers][0]!;
      victim.kill('SIGKILL');

      await stream;
      const total = kinds.length;
      await eventually(
        async () => {
          const { rows } = await pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ix_jobs WHERE status IN ('done', 'error')`,
          );
          return rows[0]!.n === total;
        },
        'every job finished',
        90_000,
      );

      // Every acknowledged submit exists, and nothing is left in flight.
      const { rows } = await pool.query<{
        request_id: string;
        status: string;
        attempts: number;
        claim_epoch: number;
        error: string | null;
      }>(`SELECT request_id, status, attempts, claim_epoch, response->>'error' AS error FROM ix_jobs`);
      expect(acknowledged.size).toBe(total);
      expect(new Set(rows.map((r) => r.request_id))).toEqual(acknowledged);
      const { rows: inFlight } = await pool.query('SELECT count(*)::int AS queued FROM ix_job_queue');
      expect(inFlight[0]).toEqual({ queued: 0 });
      expect(await heldJobCount(pool)).toBe(0);

      const runs = new Map<string, number>();
      for (const line of readFileSync(calls, 'utf8').split('\n').filter(Boolean)) {
        const [requestId] = line.split(' ');
        runs.set(requestId!, (runs.get(requestId!) ?? 0) + 1);
      }
      for (const row of rows) {
        const kind = kindOf.get(row.request_id);
        const ran = runs.get(row.request_id) ?? 0;
        if (kind === 'ordinary') {
          expect({ id: row.request_id, status: row.status }).toEqual({ id: row.request_id, status: 'done' });
          // Once, plus once for each run a worker's death or the restart cut short.
          expect(ran).toBeGreaterThanOrEqual(1);
          expect(ran).toBeLessThanOrEqual(1 + row.attempts + row.claim_epoch);
        } else if (kind === 'crash') {
          expect(row).toMatchObject({ status: 'error', attempts: 3 });
          expect(row.error).toMatch(/abandoned after 3 attempts/);
        } else {
          expect(row.status).toBe('error');
          expect(row.error).toMatch(/^pipeline result could not be stored: /);
        }
      }
      const rerun = rows.filter((r) => (runs.get(r.request_id) ?? 0) > 1).length;
      console.log(
        `[chaos] ${total} jobs (${CRASHING} crashing, ${UNSTORABLE} unstorable), 1 PostgreSQL restart ` +
          `(${restartEnded - restartBegan} ms down), ${deaths} worker deaths (1 kill -9, the rest crashing pipelines), ` +
          `${failedSubmits} submits retried, ${rerun} jobs run more than once; ` +
          `first job done ${recoveredMs} ms after the restart; all settled in ${Date.now() - started} ms`,
      );
    } finally {
      await pool.end();
    }
  }, 150_000);
});
