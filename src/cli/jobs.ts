/** `ix submit` and `ix get`: the store directly, on IX_POSTGRES_URL. */
import { readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import type { z } from 'zod';
import { callbackUrlProblem, SubmitBodySchema } from '../api/index.js';
import { loadConfig } from '../config.js';
import { JobSchema } from '../contracts/index.js';
import { get, insertPending, notifyPending } from '../store/index.js';
import { openConfiguredPool, requirePostgresUrl } from './database.js';
import { UsageError } from './usage.js';

/** A request that is not valid JSON or breaks the contract: exit 2 with every problem listed. */
export class InvalidRequestError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid request:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'InvalidRequestError';
  }
}

function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (at, key) => (typeof key === 'number' ? `${at}[${key}]` : `${at}.${String(key)}`),
    '$',
  );
}

function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${jsonPath(issue.path)}: ${issue.message}`);
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

/** A bare RequestIX, or the API's envelope `{request, callback_url}`. */
export function parseSubmission(source: string) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch (error) {
    throw new InvalidRequestError([`not JSON: ${(error as Error).message}`]);
  }
  const enveloped = parsed !== null && typeof parsed === 'object' && 'request' in parsed;
  const result = SubmitBodySchema.safeParse(enveloped ? parsed : { request: parsed });
  if (!result.success) {
    const problems = problemsOf(result.error);
    // Paths read as in the file the user wrote: a bare request has no `request` around it.
    throw new InvalidRequestError(enveloped ? problems : problems.map((p) => p.replace(/^\$\.request/, '$')));
  }
  return result.data;
}

export async function submit(args: string[]): Promise<void> {
  if (args.length > 1) throw new UsageError('submit takes at most one FILE', 'submit');
  const config = loadConfig();
  const url = requirePostgresUrl(config, 'submit');
  const { request, callback_url: callbackUrl } = parseSubmission(await readInput(args[0]));
  if (callbackUrl !== null) {
    const problem = callbackUrlProblem(callbackUrl, config.callbacks.allowPrivate);
    if (problem) throw new InvalidRequestError([`$.callback_url: ${problem}`]);
  }
  const pool = await openConfiguredPool(url, { max: 1, applicationName: 'ix submit' });
  try {
    const { job, created } = await insertPending(pool, request, callbackUrl);
    if (created) await notifyPending(pool);
    else console.error(`ix: already submitted as job ${job.job_id}; this is that job`);
    console.log(JSON.stringify(job, null, 2));
  } finally {
    await pool.end();
  }
}

/** Exit 1 when there is no such job. */
export class JobNotFoundError extends Error {}

export async function getJob(args: string[]): Promise<void> {
  const [jobId, ...extra] = args;
  if (jobId === undefined || extra.length > 0) throw new UsageError('get takes one JOB_ID', 'get');
  if (!JobSchema.shape.job_id.safeParse(jobId).success)
    throw new UsageError(`"${jobId}" is not a job id (a UUID)`, 'get');
  const config = loadConfig();
  const url = requirePostgresUrl(config, 'get');
  const pool = await openConfiguredPool(url, { max: 1, applicationName: 'ix get' });
  try {
    const job = await get(pool, jobId);
    if (!job) throw new JobNotFoundError(`no job ${jobId} (not found)`);
    console.log(JSON.stringify(job, null, 2));
  } finally {
    await pool.end();
  }
}
