import type pg from 'pg';
import { type Config, ConfigError } from '../config.js';
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
