#!/usr/bin/env node
/**
 * The `ix` command. Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 */
import { parseArgs } from 'node:util';
import { CallbackDeliverer } from './callbacks/index.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import {
  createPool,
  LATEST_VERSION,
  MigrationError,
  migrateDown,
  migrateUp,
  schemaVersion,
} from './store/index.js';
import { loadPipeline, Worker } from './worker/index.js';

const USAGE = `Usage: ix <command>

Commands:
  migrate up [--to VERSION]     apply migrations (default: all, up to ${LATEST_VERSION})
  migrate down [--to VERSION]   revert migrations (default: one step; --to 0 removes everything)
  worker [--concurrency N]      run jobs through the pipeline until SIGTERM/SIGINT

Environment: IX_POSTGRES_URL (required for migrate). See the README for every IX_* variable.`;

class UsageError extends Error {}

function parseVersion(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--to expects a migration version number, got "${value}"`);
  return Number(value);
}

async function migrate(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { to: { type: 'string' } },
  });
  const direction = positionals[0];
  if (direction !== 'up' && direction !== 'down') throw new UsageError('migrate expects "up" or "down"');
  const to = parseVersion(values.to);
  const config = loadConfig();
  if (!config.postgresUrl) throw new ConfigError('IX_POSTGRES_URL', 'is required for ix migrate');
  const pool = createPool(config.postgresUrl, { max: 1, applicationName: 'ix migrate' });
  try {
    const applied = direction === 'up' ? await migrateUp(pool, to) : await migrateDown(pool, to);
    const verb = direction === 'up' ? 'applied' : 'reverted';
    console.log(
      applied.length === 0
        ? `nothing to do; schema at version ${await schemaVersion(pool)}`
        : `${verb} ${applied.join(', ')}; schema at version ${await schemaVersion(pool)}`,
    );
  } finally {
    await pool.end();
  }
}

/** Resolves on the first SIGTERM or SIGINT. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

async function worker(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { concurrency: { type: 'string' } } });
  const env = { ...process.env };
  if (values.concurrency !== undefined) env.IX_WORKER_CONCURRENCY = values.concurrency;
  const config = loadConfig(env);
  if (!config.postgresUrl) throw new ConfigError('IX_POSTGRES_URL', 'is required for ix worker');
  const logger = createLogger(config.logLevel);
  const pipeline = await loadPipeline(config.worker.pipeline, config.worker.pipelineUrl);
  const pool = createPool(config.postgresUrl, { max: config.dbPoolSize, applicationName: 'ix worker' });
  const deliverer = new CallbackDeliverer({ pool, config, logger });
  const running = new Worker({
    pool,
    connectionString: config.postgresUrl,
    config: config.worker,
    pipeline,
    logger,
    onRecorded: () => deliverer.wake(),
  });
  try {
    await running.start();
    deliverer.start();
    const signal = await untilSignal();
    logger.info({ signal }, 'shutting down');
    await running.stop();
    await deliverer.stop();
  } finally {
    await pool.end();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'migrate':
        await migrate(rest);
        return 0;
      case 'worker':
        await worker(rest);
        return 0;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`ix: ${error.message}`);
      if (error instanceof UsageError) console.error(USAGE);
      return 2;
    }
    if (error instanceof MigrationError) {
      console.error(`ix: ${error.message}`);
      return 1;
    }
    console.error(`ix: ${(error as Error).message ?? error}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
