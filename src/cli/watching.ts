/**
 * `ix submit --wait` and `ix get --follow` on the database directly (without an API): a watcher
 * of the CLI's own, on a small pool and one LISTEN connection, for the command's lifetime.
 */
import { pino } from 'pino';
import type { Config } from '../config.js';
import type { Job } from '../contracts/index.js';
import { followJob, type JobEvent, JobWatcher, waitForEnd } from '../watch/index.js';
import { listenUrlFor, openConfiguredPool, poolOptions } from './database.js';

async function withWatcher<T>(
  config: Config,
  url: string,
  command: string,
  work: (watcher: JobWatcher) => Promise<T>,
): Promise<T> {
  // Warnings only, on stderr: stdout carries the job.
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const pool = await openConfiguredPool(url, poolOptions(config, `ix ${command}`, { max: 2, logger }));
  const watcher = new JobWatcher({
    pool,
    connectionString: listenUrlFor(config, url, logger),
    logger,
    pollIntervalMs: config.api.watchPollIntervalMs,
  });
  try {
    await watcher.start();
    return await work(watcher);
  } finally {
    await watcher.close();
    await pool.end();
  }
}

/** The job once it has finished, or as it stands after `waitSeconds`. */
export function waitOnDatabase(config: Config, url: string, job: Job, waitSeconds: number): Promise<Job> {
  return withWatcher(config, url, 'submit', (watcher) => waitForEnd(watcher, job, waitSeconds * 1000));
}

/** Calls `print` with each of the job's events until the final one. */
export function followOnDatabase(
  config: Config,
  url: string,
  job: Job,
  print: (event: JobEvent) => void,
): Promise<void> {
  return withWatcher(config, url, 'get', async (watcher) => {
    for await (const event of followJob(watcher, job)) print(event);
  });
}
