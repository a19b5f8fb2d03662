/** Builds the API on a test database with a config from explicit variables and captured logs. */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { pino } from 'pino';
import { buildApi } from '../../src/api/index.js';
import { loadConfig } from '../../src/config.js';
import type { Logger } from '../../src/log.js';

export interface CapturedLogs {
  logger: Logger;
  /** Everything logged so far, one JSON line per entry. */
  text(): string;
  entries(): Record<string, unknown>[];
}

export function captureLogs(): CapturedLogs {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const logger = pino({ level: 'trace' }, stream);
  return {
    logger,
    text: () => chunks.join(''),
    entries: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

export async function buildTestApi(
  pool: pg.Pool,
  env: Record<string, string> = {},
  logs: CapturedLogs = captureLogs(),
): Promise<FastifyInstance> {
  return buildApi({ pool, config: loadConfig(env), logger: logs.logger });
}

export async function countJobs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_jobs');
  return rows[0]?.n ?? 0;
}

export const JSON_HEADERS = { 'content-type': 'application/json' };
