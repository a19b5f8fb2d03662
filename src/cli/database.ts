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
    ...extra,
  };
}
