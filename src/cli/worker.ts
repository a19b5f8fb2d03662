import { parseArgs } from 'node:util';
import type pg from 'pg';
import { metricsFor } from '../api/index.js';
import { CallbackDeliverer } from '../callbacks/index.js';
import { type Config, loadConfig } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import type { Metrics } from '../metrics/index.js';
import { closePool } from '../store/index.js';
import { loadPipeline, type Pipeline, Pruner, Worker } from '../worker/index.js';
import { listenUrlFor, openConfiguredPool, poolOptions, requirePostgresUrl } from './database.js';
import { serveMetrics } from './metrics-server.js';
import { untilSignal } from './signals.js';

export interface WorkerParts {
  /** Graceful: the pruner ends its pass, running jobs get IX_SHUTDOWN_GRACE_SECONDS, then are put back; delivery stops last. */
  stop(): Promise<void>;
}

/**
 * A worker, the callback deliverer it wakes as outcomes are recorded, and the pruner, as `ix
 * worker` and `ix start` run them.
 */
export async function startWorkerParts(
  pool: pg.Pool,
  /** Where the worker LISTENs (listenUrlFor); null: it polls. */
  connectionString: string | null,
  config: Config,
  logger: Logger,
  pipeline: Pipeline,
  metrics: Metrics,
): Promise<WorkerParts> {
  const deliverer = new CallbackDeliverer({ pool, config, logger, metrics });
  const worker = new Worker({
    pool,
    connectionString,
    config: config.worker,
    pipeline,
    logger,
    onCallbacksDue: () => deliverer.wake(),
    metrics,
    defaultMaxRunning: config.clients.maxRunning,
  });
  const pruner = new Pruner(pool, config.retention, logger);
  await worker.start();
  deliverer.start();
  pruner.start();
  return {
    async stop() {
      await pruner.stop();
      await worker.stop();
      await deliverer.stop();
    },
  };
}

export async function worker(args: string[]): Promise<void> {
  const stopRequested = untilSignal();
  const { values } = parseArgs({ args, options: { concurrency: { type: 'string' } } });
  const env = { ...process.env };
  if (values.concurrency !== undefined) env.IX_WORKER_CONCURRENCY = values.concurrency;
  const config = loadConfig(env);
  const url = requirePostgresUrl(config, 'worker');
  const logger = createLogger(config.logLevel);
  // Before connecting, so a bad IX_PIPELINE is reported even when the database is down too.
  const pipeline = await loadPipeline(config.worker);
  const pool = await openConfiguredPool(
    url,
    poolOptions(config, 'ix worker', { logger, genericPlans: true }),
  );
  try {
    const metrics = metricsFor(pool, config);
    const parts = await startWorkerParts(
      pool,
      listenUrlFor(config, url, logger),
      config,
      logger,
      pipeline,
      metrics,
    );
    const served = config.metrics.port === null ? null : await serveMetrics(config, metrics);
    if (served) logger.info({ address: served.address }, 'metrics served');
    const signal = await stopRequested;
    logger.info({ signal }, 'shutting down');
    await served?.close();
    await parts.stop();
  } finally {
    await closePool(pool);
  }
}
