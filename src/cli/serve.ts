/** `ix start` (API + worker, embedded PostgreSQL by default) and `ix api` (API only). */
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { assertSafeExposure, metricsFor, startApi } from '../api/index.js';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import type { Metrics } from '../metrics/index.js';
import { closePool, databaseCreateIfMissing, migrateUp, openPool, withoutPassword } from '../store/index.js';
import { loadPipeline } from '../worker/index.js';
import { listenUrlFor, openConfiguredPool, poolOptions, requirePostgresUrl } from './database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.js';
import { untilSignal } from './signals.js';
import { startWorkerParts } from './worker.js';

/** The database `ix start` creates and uses on its embedded server. */
export const EMBEDDED_DATABASE = 'ix';

/** Steps to undo, newest first, whether start-up finished or failed halfway. */
class Teardown {
  private readonly steps: { what: string; undo: () => Promise<void> }[] = [];

  add(what: string, undo: () => Promise<void>): void {
    this.steps.unshift({ what, undo });
  }

  /** Runs every step even when one fails, so the embedded PostgreSQL is stopped regardless. */
  async run(logger: Logger): Promise<void> {
    for (const { what, undo } of this.steps.splice(0)) {
      try {
        await undo();
      } catch (error) {
        logger.error({ err: error }, `shutdown: ${what} failed`);
      }
    }
  }
}

interface Database {
  pool: pg.Pool;
  url: string;
  /** What to print: never the password. */
  description: string;
}

async function embeddedDatabase(config: Config, logger: Logger, teardown: Teardown): Promise<Database> {
  const server: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir: config.dataDir });
  teardown.add('stopping the embedded PostgreSQL', () => server.stop());
  const admin = await openPool(server.url, poolOptions(config, 'ix start', { max: 1 }));
  try {
    await databaseCreateIfMissing(admin, EMBEDDED_DATABASE);
  } finally {
    await admin.end();
  }
  const url = server.urlFor(EMBEDDED_DATABASE);
  // One pool for the worker and the API: the worker's claims want generic plans, made without
  // sequential scans, more than an operator's search on a one-machine setup wants custom ones.
  const pool = await openPool(url, poolOptions(config, 'ix start', { logger, genericPlans: true }));
  return {
    pool,
    url,
    description: `${withoutPassword(url)} (embedded PostgreSQL in ${server.dataDir}; log and password there)`,
  };
}

async function configuredDatabase(
  url: string,
  config: Config,
  logger: Logger,
  command: string,
): Promise<Database> {
  const pool = await openConfiguredPool(
    url,
    poolOptions(config, `ix ${command}`, { logger, genericPlans: command === 'start' }),
  );
  return { pool, url, description: withoutPassword(url) };
}

async function listen(
  config: Config,
  database: Database,
  listenUrl: string | null,
  logger: Logger,
  metrics: Metrics,
) {
  try {
    return await startApi({ pool: database.pool, connectionString: listenUrl, config, logger, metrics });
  } catch (error) {
    if ((error as { code?: string }).code === 'EADDRINUSE') {
      throw new ConfigError('IX_PORT', `${config.api.host}:${config.api.port} is already in use`);
    }
    throw error;
  }
}

async function serve(command: 'start' | 'api', args: string[]): Promise<void> {
  parseArgs({ args, options: {} });
  const stopRequested = untilSignal();
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const withWorker = command === 'start';
  const postgresUrl = withWorker ? config.postgresUrl : requirePostgresUrl(config, command);
  // Before anything starts, so a bad IX_PIPELINE or an open API on a public address is reported
  // without initialising or starting a database first. With IX_POSTGRES_URL, keys in the
  // ix_clients table count too, so the API checks once it has read them (buildApi); the embedded
  // PostgreSQL is a developer's, and is not started to find out.
  if (!postgresUrl) assertSafeExposure(config);
  const pipeline = withWorker ? await loadPipeline(config.worker) : null;

  const teardown = new Teardown();
  try {
    const database = postgresUrl
      ? await configuredDatabase(postgresUrl, config, logger, command)
      : await embeddedDatabase(config, logger, teardown);
    teardown.add('closing the database pool', () => closePool(database.pool));
    if (withWorker) {
      const applied = await migrateUp(database.pool);
      if (applied.length > 0) logger.info({ applied }, 'migrated');
    }

    const listenUrl = listenUrlFor(config, database.url, logger);
    // One registry for the process: its worker's counters and its API's, served by the API.
    const metrics = metricsFor(database.pool, config);
    if (pipeline) {
      const parts = await startWorkerParts(database.pool, listenUrl, config, logger, pipeline, metrics);
      teardown.add('stopping the worker', () => parts.stop());
    }
    // Listening last, so it is closed first: no job is accepted once the worker is stopping.
    const api = await listen(config, database, listenUrl, logger, metrics);
    teardown.add('closing the API', () => api.close());

    logger.info({ address: api.address, database: withoutPassword(database.url) }, 'ix listening');
    process.stderr.write(
      `ix listening on ${api.address}\n` +
        `  API docs: ${api.address}/docs\n` +
        `  dashboard: ${api.address}/dashboard\n` +
        `  database: ${database.description}\n` +
        `  stop with Ctrl-C (SIGINT) or SIGTERM\n`,
    );
    const signal = await stopRequested;
    logger.info({ signal }, 'shutting down');
  } finally {
    await teardown.run(logger);
  }
}

export const start = (args: string[]) => serve('start', args);
export const api = (args: string[]) => serve('api', args);
