/**
 * Reading job rows: the columns every statement returns, the row they make, and its check against
 * the Job contract. Shared by every statement that returns jobs, here and in ../callbacks.ts.
 */
import pg from 'pg';
import { z } from 'zod';
import {
  CALLBACK_STATUSES,
  CallbackAttemptSchema,
  type CallbackStatus,
  IX_ID_PATTERN,
  JOB_STATUSES,
  type Job,
  type JobStatus,
  type JsonValue,
  ProgressSchema,
  ResponseIXSchema,
  type Run,
  type RunOutcome,
  RunSchema,
} from '../../contracts/index.js';

export class CorruptJobError extends Error {
  constructor(
    readonly jobId: string,
    detail: string,
  ) {
    super(`job ${jobId} in ix_jobs does not match the Job contract: ${detail}`);
    this.name = 'CorruptJobError';
  }
}

export const JOB_COLUMNS = `job_id, ix_id, client_id, request_id, created_at, callback_url, input, status, attempts,
  started_at, finished_at, callback_status, response, callback_attempts, max_attempts, run_after, last_error,
  worker_id, earlier_runs, progress, priority`;

/** JOB_COLUMNS of `ix_jobs j`, for statements that join it. */
export const JOB_COLUMNS_OF_J = JOB_COLUMNS.replace(/(\w+)/g, 'j.$1');

export interface JobRow {
  job_id: string;
  ix_id: string;
  client_id: string;
  request_id: string;
  created_at: Date | string;
  callback_url: string | null;
  input: JsonValue;
  status: string;
  attempts: number;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  callback_status: string | null;
  response: unknown;
  callback_attempts: unknown;
  max_attempts: number | null;
  run_after: Date | string | null;
  last_error: string | null;
  worker_id: string | null;
  earlier_runs: unknown;
  progress: unknown;
  priority: number;
}

const STATUSES: ReadonlySet<string> = new Set(JOB_STATUSES);
const CALLBACK_STATUS_SET: ReadonlySet<string> = new Set(CALLBACK_STATUSES);
const CallbackAttemptsSchema = z.array(CallbackAttemptSchema);
/** A run as `earlier_runs` stores it (migrations/0009_attempt_history.ts): its duration is read off its times. */
const EarlierRunsSchema = z.array(RunSchema.omit({ duration_ms: true }));

/**
 * `ix_jobs.response` as stored: a response's `error` and `result`. Rows written before migration
 * 15 hold the `ix_id` too, which must then be the row's own.
 */
const StoredResponseSchema = ResponseIXSchema.partial({ ix_id: true });

/** A JSONB document checked against its schema; its problems are added to `problems`. */
function document<T>(schema: z.ZodType<T>, value: unknown, column: string, problems: string[]): T | null {
  if (value === null) return null;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues)
    problems.push(`${[column, ...issue.path].join('.')}: ${issue.message}`);
  return null;
}

/**
 * Every row read back is checked against the Job contract; one that does not fit is a bug,
 * named. By hand rather than through JobSchema.safeParse, which cost a busy worker a large share
 * of its CPU and garbage (docs/design.md, "Costs measured on the hot path"): the scalar columns
 * are checked directly (the uuid and timestamptz types hold their own), the JSONB documents by
 * their schemas.
 */
export function hydrate(row: JobRow): Job {
  const problems: string[] = [];
  if (!IX_ID_PATTERN.test(row.ix_id)) problems.push('ix_id: not 16 lowercase hex characters');
  if (row.client_id.length < 1 || row.client_id.length > 128)
    problems.push('client_id: not 1–128 characters');
  if (row.request_id.length < 1 || row.request_id.length > 256)
    problems.push('request_id: not 1–256 characters');
  if (!STATUSES.has(row.status)) problems.push(`status: unknown "${row.status}"`);
  if (row.callback_status !== null && !CALLBACK_STATUS_SET.has(row.callback_status))
    problems.push(`callback_status: unknown "${row.callback_status}"`);
  if (!Number.isInteger(row.attempts) || row.attempts < 0) problems.push('attempts: not a count');
  const stored = document(StoredResponseSchema, row.response, 'response', problems);
  if (stored?.ix_id !== undefined && stored.ix_id !== row.ix_id)
    problems.push(`response.ix_id: "${stored.ix_id}", not the job's own`);
  const response = stored === null ? null : { ix_id: row.ix_id, error: stored.error, result: stored.result };
  const callbackAttempts = document(
    CallbackAttemptsSchema,
    row.callback_attempts,
    'callback_attempts',
    problems,
  );
  const earlierRuns = document(EarlierRunsSchema, row.earlier_runs, 'earlier_runs', problems);
  const progress = document(ProgressSchema, row.progress, 'progress', problems);
  if (problems.length > 0) throw new CorruptJobError(row.job_id, problems.join('; '));
  const startedAt = row.started_at === null ? null : isoTimestamp(row.started_at);
  const finishedAt = row.finished_at === null ? null : isoTimestamp(row.finished_at);
  return {
    job_id: row.job_id,
    ix_id: row.ix_id,
    client_id: row.client_id,
    request_id: row.request_id,
    status: row.status as JobStatus,
    // The request is stored as its parts: the identifiers have columns of their own.
    request: { ix_client_id: row.client_id, request_id: row.request_id, ix_id: row.ix_id, input: row.input },
    response,
    callback_url: row.callback_url,
    callback_status: row.callback_status as CallbackStatus | null,
    callback_attempts: callbackAttempts,
    attempts: row.attempts,
    max_attempts: row.max_attempts,
    priority: row.priority,
    run_after: runAfterOf(row),
    last_error: row.last_error,
    progress,
    attempt_history: attemptHistory(row, earlierRuns, startedAt, finishedAt, response?.error ?? null),
    created_at: isoTimestamp(row.created_at),
    started_at: startedAt,
    finished_at: finishedAt,
  };
}

/**
 * The runs `earlier_runs` keeps, then the run the row's own columns describe: the one in flight,
 * or the one whose outcome ended the job. Every other end of a run clears `started_at`
 * (migrations/0009_attempt_history.ts), so a set `started_at` always means such a run.
 */
function attemptHistory(
  row: JobRow,
  earlierRuns: readonly Omit<Run, 'duration_ms'>[] | null,
  startedAt: string | null,
  finishedAt: string | null,
  error: string | null,
): Run[] {
  const runs: Run[] = (earlierRuns ?? []).map((run) => ({
    ...run,
    duration_ms: durationMs(run.started_at, run.finished_at),
  }));
  if (startedAt !== null) {
    runs.push({
      attempt: row.attempts + 1,
      worker_id: row.worker_id,
      started_at: startedAt,
      finished_at: finishedAt,
      duration_ms: durationMs(startedAt, finishedAt),
      outcome: row.status as RunOutcome,
      error,
      retry_at: null,
    });
  }
  return runs;
}

function durationMs(startedAt: string, finishedAt: string | null): number | null {
  return finishedAt === null ? null : Math.max(0, Date.parse(finishedAt) - Date.parse(startedAt));
}

/** When a waiting job's next run is due; null once that time has come, or for a job not waiting. */
export function runAfterOf(row: Pick<JobRow, 'run_after' | 'status'>): string | null {
  if (row.run_after === null || row.status !== 'pending') return null;
  const at = isoTimestamp(row.run_after);
  return Date.parse(at) > Date.now() ? at : null;
}

/**
 * A named statement: each connection parses and plans it once, not on every call: planning the
 * claim takes as long as executing a claim of 50 jobs (docs/design.md, "Costs measured on the
 * hot path").
 */
export function prepared(name: string, text: string, values: unknown[]) {
  return { name, text, values, types: RAW_TIMESTAMPS };
}

const TIMESTAMPTZ_OID = 1184;

/**
 * Job queries take timestamptz columns as PostgreSQL's text instead of parsing each into a Date
 * only to print it again (docs/design.md, "Costs measured on the hot path").
 */
export const RAW_TIMESTAMPS = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ_OID
      ? (text: string) => text
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** ISO 8601 as Date.toISOString() prints it (UTC, milliseconds), from a Date or PostgreSQL's text. */
export function isoTimestamp(value: Date | string): string {
  if (typeof value !== 'string') return value.toISOString();
  // PostgreSQL's UTC form, 'YYYY-MM-DD HH:MM:SS[.ffffff]+00': ix's pools ask for UTC. Behind a
  // transaction pooler they cannot (db.ts), and the server's zone comes back: '+05:30' and the
  // like take the general path below.
  if (value.length >= 22 && value.endsWith('+00') && value[10] === ' ') {
    const fraction = value[19] === '.' ? value.slice(20, -3) : '';
    return `${value.slice(0, 10)}T${value.slice(11, 19)}.${`${fraction}000`.slice(0, 3)}Z`;
  }
  return new Date(value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString();
}
