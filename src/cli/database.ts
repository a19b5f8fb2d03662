import type pg from 'pg';
import { type Config, ConfigError } from '../config.js';
import type { Logger } from '../log.js';
import { type CreatePoolOptions, DatabaseUnreachableError, openPool } from '../store/index.js';

/** IX_POSTGRES_URL, or a ConfigError saying which command needs it. */
export function requirePostgresUrl(config: Config, command: string): string {
  if (!config.postgresUrl) throw new ConfigError('IX_POSTGRES_URL', `is required for ix ${command}`);
  return config.postgresUrl;
}

/** A connected pool on IX_POSTGRES_URL; an unreachable server is a configuration error. */
export async function openConfiguredPool(url: string, options: CreatePoolOptions): Promise<pg.Pool> {
  try {
    return await openPool(url, options);
  } catch (error) {
    if (error instanceof DatabaseUnreachableError) throw new ConfigError('IX_POSTGRES_URL', error.message);
    throw error;
  }
}

/**
 * What every pool of an ix process takes from the configuration: IX_DB_POOL_SIZE connections
 * (unless `max` says otherwise), each under IX_DB_STATEMENT_TIMEOUT_SECONDS; a lost connection is
 * logged where there is a logger.
 */
export function poolOptions(
  config: Config,
  applicationName: string,
  extra: { max?: number; logger?: Logger; genericPlans?: boolean } = {},
): CreatePoolOptions {
  return {
    max: config.dbPoolSize,
    applicationName,
    statementTimeoutMs: config.dbStatementTimeoutSeconds * 1000,
    transactionPooler: config.dbPooler === 'transaction',
    preparedStatements: config.dbPreparedStatements,
    ...extra,
  };
}

/**
 * Where a process LISTENs (workers' wake-ups and cancels, watchers' job changes), for `url`, the
 * database its pools use: IX_LISTEN_URL, else `url` itself unless that is a transaction pooler's.
 * Null: nowhere, and every LISTENer of the process polls instead; said once, here, by the one
 * call each process makes.
 */
export function listenUrlFor(config: Config, url: string, logger: Pick<Logger, 'warn'>): string | null {
  if (config.listenUrl !== null) return config.listenUrl;
  if (config.dbPooler !== 'transaction') return url;
  logger.warn(
    {
      worker_poll_interval_ms: config.worker.pollIntervalMs,
      watch_poll_interval_ms: config.api.watchPollIntervalMs,
    },
    'IX_DB_POOLER=transaction without IX_LISTEN_URL: no LISTEN, workers and waiters poll (set IX_LISTEN_URL to a direct connection to be told at once)',
  );
  return null;
}
