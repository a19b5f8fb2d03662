import type pg from 'pg';
import { type Logger, pino } from 'pino';
import { type Config, loadConfig, readSetting, SETTINGS } from '../../src/config.js';
import { jobNotifyPending } from '../../src/store/index.js';
import { type Pipeline, Worker } from '../../src/worker/index.js';
import { makeRequest } from './factories.js';
import { insertPending } from './jobs.js';

export const silentLogger = pino({ level: readSetting(SETTINGS.tests.logLevel, process.env) });

export function workerConfig(overrides: Partial<Config['worker']> = {}): Config['worker'] {
  return { ...loadConfig({}).worker, pollIntervalMs: 100, ...overrides };
}

export function makeWorker(
  db: { pool: pg.Pool; url: string },
  pipeline: Pipeline,
  overrides: Partial<Config['worker']> = {},
  logger: Logger = silentLogger,
): Worker {
  return new Worker({
    pool: db.pool,
    connectionString: db.url,
    config: workerConfig(overrides),
    pipeline,
    logger,
  });
}

/** Inserts `n` jobs through the repository and wakes the workers; returns their ids. */
export async function submitMany(pool: pg.Pool, n: number, input: unknown = { ok: true }): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push((await insertPending(pool, makeRequest({ input: input as never }), null)).job.job_id);
  }
  await jobNotifyPending(pool);
  return ids;
}

export async function statusCounts(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM ix_jobs GROUP BY status',
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes (then throws `what`). */
export async function eventually(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for: ${what}`);
}
