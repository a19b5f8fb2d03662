/**
 * `ix submit`, `ix get` and `ix cancel`: over HTTP through an ix API when given `--url` (or IX_API_URL),
 * else on the store directly, on IX_POSTGRES_URL.
 */
import { readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import type { z } from 'zod';
import { IxApiError, IxClient, IxWaitTimeoutError } from '../client/index.js';
import { type Config, ConfigError, httpUrl, loadConfig } from '../config.js';
import {
  type Job,
  JobSchema,
  jsonTextProblems,
  type SubmitBody,
  SubmitBodySchema,
  toJsonPath,
} from '../contracts/index.js';
import { JobFinishedError, JobGoneError, jobCancel, jobGet, tombstoneGet } from '../store/index.js';
import { InvalidSubmissionError, SubmitService } from '../submit/index.js';
import { isFinished, type JobEvent } from '../watch/index.js';
import { openConfiguredPool, poolOptions, requirePostgresUrl } from './database.js';
import { UsageError } from './usage.js';
import { followOnDatabase, waitOnDatabase } from './watching.js';

/** A request that is not valid JSON or breaks the contract: exit 2 with every problem listed. */
export class InvalidRequestError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid request:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'InvalidRequestError';
  }
}

function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${toJsonPath(issue.path)}: ${issue.message}`);
}

async function readInput(file: string | undefined): Promise<string> {
  if (file !== undefined && file !== '-') {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`, 'submit');
    }
  }
  if (process.stdin.isTTY) throw new UsageError('give a FILE or pipe the request JSON on stdin', 'submit');
  return text(process.stdin);
}

/**
 * A bare RequestIX, or the API's envelope `{request, callback_url, run_after, …}`, refused as the API would
 * refuse it: including what JSON.parse accepts but ix would not keep as written.
 */
export function parseSubmission(source: string) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch (error) {
    throw new InvalidRequestError([`not JSON: ${(error as Error).message}`]);
  }
  const unkeepable = jsonTextProblems(source);
  if (unkeepable.length > 0)
    throw new InvalidRequestError(unkeepable.map(({ path, message }) => `${path}: ${message}`));
  const enveloped = parsed !== null && typeof parsed === 'object' && 'request' in parsed;
  const result = SubmitBodySchema.safeParse(enveloped ? parsed : { request: parsed });
  if (!result.success) {
    const problems = problemsOf(result.error);
    // Paths read as in the file the user wrote: a bare request has no `request` around it.
    throw new InvalidRequestError(enveloped ? problems : problems.map((p) => p.replace(/^\$\.request/, '$')));
  }
  return result.data;
}

/** `[--url URL] positionals…`, the arguments of submit, get and cancel. */
function parseUrlArgs(args: string[]) {
  return parseArgs({ args, options: { url: { type: 'string' } }, allowPositionals: true });
}

/** How long `ix submit --wait` waits when given no SECONDS. */
const DEFAULT_WAIT_SECONDS = 60;

/** submit's arguments: `--wait` may stand alone, which parseArgs would refuse without a value. */
function parseSubmitArgs(args: string[]) {
  const given = args.flatMap((arg, i) =>
    arg === '--wait' && !/^\d+(\.\d+)?$/.test(args[i + 1] ?? '') ? [`--wait=${DEFAULT_WAIT_SECONDS}`] : [arg],
  );
  const { values, positionals } = parseArgs({
    args: given,
    options: { url: { type: 'string' }, wait: { type: 'string' } },
    allowPositionals: true,
  });
  const wait = values.wait === undefined ? null : Number(values.wait);
  if (wait !== null && !(Number.isFinite(wait) && wait >= 0))
    throw new UsageError(`--wait takes a number of seconds, got "${values.wait}"`, 'submit');
  return { url: values.url, wait, positionals };
}

/** Runs `work` on a one-connection pool on `url`, closed afterwards. */
async function onDatabase<T>(
  config: Config,
  url: string,
  command: string,
  work: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pool = await openConfiguredPool(url, poolOptions(config, `ix ${command}`, { max: 1 }));
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/** The API to talk to: `--url`, else IX_API_URL; null means the database. */
function apiClient(config: Config, url: string | undefined, command: string): IxClient | null {
  let baseUrl = config.client.apiUrl;
  if (url !== undefined) {
    try {
      baseUrl = httpUrl('--url', url);
    } catch (error) {
      throw new UsageError((error as ConfigError).message, command);
    }
  }
  if (baseUrl === null) return null;
  return new IxClient({
    baseUrl,
    ...(config.client.apiKey === null ? {} : { apiKey: config.client.apiKey }),
  });
}

/**
 * The API's answer, as the database path would give it: a client mistake (4xx) exits 2 with the
 * server's message and fields, a missing job exits 1, a request id already used for another
 * request, or a pruned job (gone), exits 1 with the server's message, an unreachable server
 * exits 1 naming it.
 */
async function overHttp<T>(baseUrl: string, call: () => Promise<T>, lookingUpJob = false): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof IxApiError) {
      if (error.status === 404 && lookingUpJob) throw new JobNotFoundError(error.message);
      if (error.status === 401 || error.status === 403) throw new ConfigError('IX_API_KEY', error.message);
      if (error.code === 'idempotency_conflict' || error.code === 'gone') throw error;
      if (error.code === 'job_finished' && error.job) throw new JobFinishedError(error.job);
      if (error.status >= 400 && error.status < 500)
        throw new InvalidRequestError([
          error.message,
          ...error.details.map((d) => `${d.path}: ${d.message}`),
        ]);
      throw error;
    }
    // fetch fails with "fetch failed"; the reason (ECONNREFUSED, bad port, …) is its cause.
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new Error(`cannot reach the ix API at ${baseUrl} (${reason})`);
  }
}

function printJob(job: Job): void {
  console.log(JSON.stringify(job, null, 2));
}

type Submit = (submission: SubmitBody) => Promise<{ job: Job; created: boolean }>;

/** Where a submission goes: the API when there is one, else the store (checked before reading input). */
function submitter(config: Config, client: IxClient | null): Submit {
  if (client) {
    return (body) =>
      overHttp(client.baseUrl, () =>
        client.submit(body.request, body.callback_url, {
          ...(body.run_after === null ? {} : { runAfter: body.run_after }),
          ...(body.delay_seconds === null ? {} : { delaySeconds: body.delay_seconds }),
          ...(body.max_attempts === null ? {} : { maxAttempts: body.max_attempts }),
          ...(body.priority === 0 ? {} : { priority: body.priority }),
        }),
      );
  }
  const url = requirePostgresUrl(config, 'submit');
  return (body) =>
    onDatabase(config, url, 'submit', async (pool) => {
      const submissions = SubmitService.fromConfig(pool, config);
      try {
        return await submissions.submit(body);
      } catch (error) {
        if (error instanceof InvalidSubmissionError) throw new InvalidRequestError([error.message]);
        throw error;
      } finally {
        await submissions.settled();
      }
    });
}

/**
 * Prints the job; with `--wait`, once it has finished. One that has not within the wait is
 * printed as it stands, and exits 1 (NotFinishedError).
 */
export async function submit(args: string[]): Promise<void> {
  const { url, wait, positionals } = parseSubmitArgs(args);
  if (positionals.length > 1) throw new UsageError('submit takes at most one FILE', 'submit');
  const config = loadConfig();
  const client = apiClient(config, url, 'submit');
  const send = submitter(config, client);
  const { job, created } = await send(parseSubmission(await readInput(positionals[0])));
  if (!created) console.error(`ix: already submitted as job ${job.job_id}; this is that job`);
  if (wait === null) {
    printJob(job);
    return;
  }
  const waited = client
    ? await overHttp(client.baseUrl, () =>
        client
          .waitFor(job.job_id, { timeoutMs: wait * 1000 })
          .catch((error: unknown) =>
            error instanceof IxWaitTimeoutError ? client.get(job.job_id) : Promise.reject(error),
          ),
      )
    : await waitOnDatabase(config, requirePostgresUrl(config, 'submit'), job, wait);
  printJob(waited);
  if (!isFinished(waited))
    throw new NotFinishedError(`job ${job.job_id} is still ${waited.status} after ${wait} s`);
}

/** Exit 1: `ix submit --wait` gave up before the job finished. */
export class NotFinishedError extends Error {}

/** Exit 1 when there is no such job. */
export class JobNotFoundError extends Error {}

/** The one JOB_ID argument of get and cancel, and the --url option. */
function jobIdArgs(args: string[], command: string): { jobId: string; url: string | undefined } {
  const { values, positionals } = parseUrlArgs(args);
  const [jobId, ...extra] = positionals;
  if (jobId === undefined || extra.length > 0) throw new UsageError(`${command} takes one JOB_ID`, command);
  if (!JobSchema.shape.job_id.safeParse(jobId).success)
    throw new UsageError(`"${jobId}" is not a job id (a UUID)`, command);
  return { jobId, url: values.url };
}

/** Prints the job; with `--follow`, each of its events as one JSON line, until the final one. */
export async function getJob(args: string[]): Promise<void> {
  const follow = args.includes('--follow');
  const { jobId, url } = jobIdArgs(
    args.filter((arg) => arg !== '--follow'),
    'get',
  );
  const config = loadConfig();
  const client = apiClient(config, url, 'get');
  const printEvent = (event: JobEvent) => console.log(JSON.stringify(event));
  if (client) {
    if (!follow) printJob(await overHttp(client.baseUrl, () => client.get(jobId), true));
    else
      await overHttp(
        client.baseUrl,
        async () => {
          for await (const event of client.events(jobId)) printEvent(event);
        },
        true,
      );
    return;
  }
  const postgresUrl = requirePostgresUrl(config, 'get');
  const [job, tombstone] = await onDatabase(config, postgresUrl, 'get', async (pool) => {
    const found = await jobGet(pool, jobId);
    return [found, found ? null : await tombstoneGet(pool, jobId)] as const;
  });
  if (tombstone) throw new JobGoneError(tombstone);
  if (!job) throw new JobNotFoundError(`no job ${jobId} (not found)`);
  if (follow) await followOnDatabase(config, postgresUrl, job, printEvent);
  else printJob(job);
}

/**
 * Prints the job as the cancellation left it: `cancelled`, or `running` while its worker aborts
 * it. A job that had ended `done` or `error` is printed too, and exits 1 (JobFinishedError).
 */
export async function cancelJob(args: string[]): Promise<void> {
  const { jobId, url } = jobIdArgs(args, 'cancel');
  const config = loadConfig();
  const client = apiClient(config, url, 'cancel');
  try {
    const job = client
      ? await overHttp(client.baseUrl, () => client.cancel(jobId), true)
      : await onDatabase(config, requirePostgresUrl(config, 'cancel'), 'cancel', async (pool) => {
          const connection = await pool.connect();
          try {
            const cancelled = await jobCancel(connection, jobId);
            // A pruned job answers gone, as through the API.
            const tombstone = cancelled ? null : await tombstoneGet(connection, jobId);
            if (tombstone) throw new JobGoneError(tombstone);
            return cancelled;
          } finally {
            connection.release();
          }
        });
    if (!job) throw new JobNotFoundError(`no job ${jobId} (not found)`);
    if (job.status === 'running')
      console.error(`ix: job ${jobId} is running; its worker was asked to stop it`);
    printJob(job);
  } catch (error) {
    if (error instanceof JobFinishedError) printJob(error.job);
    throw error;
  }
}
