/** Builds the API on a test database with a config from explicit variables and captured logs. */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { buildApi } from '../../src/api/index.js';
import { loadConfig } from '../../src/config.js';
import type { JobWatcher } from '../../src/watch/index.js';
import { type CapturedLogs, captureLogs } from './logs.js';

export { type CapturedLogs, captureLogs } from './logs.js';

export async function buildTestApi(
  pool: pg.Pool,
  env: Record<string, string> = {},
  logs: CapturedLogs = captureLogs(),
  watcher?: JobWatcher,
): Promise<FastifyInstance> {
  // The test pools are made from a URL, which the API's LISTEN connection reuses.
  const connectionString = pool.options.connectionString ?? '';
  return buildApi({
    pool,
    connectionString,
    config: loadConfig(env),
    logger: logs.logger,
    ...(watcher ? { watcher } : {}),
  });
}

export async function countJobs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_jobs');
  return rows[0]?.n ?? 0;
}

export const JSON_HEADERS = { 'content-type': 'application/json' };
