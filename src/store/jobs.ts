/**
 * The jobs repository: the only code that reads or writes ix_jobs and its queue, lease and
 * worker tables (the schema and why it has three tables: migrations/0001_jobs.ts). Every
 * function takes the caller's client or transaction; the caller commits.
 */
import { hostname } from 'node:os';
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
  type RequestIX,
  type ResponseIX,
  ResponseIXSchema,
} from '../contracts/index.js';
import type { Db } from './db.js';
import { newIxId, newJobId } from './ids.js';

/** The channel `insertPending` (and every path back to pending) notifies; workers listen on it. */
export const PENDING_CHANNEL = 'ix_job_pending';

export class CorruptJobError extends Error {
  constructor(
    readonly jobId: string,
    detail: string,
  ) {
    super(`job ${jobId} in ix_jobs does not match the Job contract: ${detail}`);
    this.name = 'CorruptJobError';
  }
}

/**
 * `(client_id, request_id)` already holds a job submitted with a different request (`input` or
 * `callback_url`). The first request stands and nothing was written: a different request needs
 * a request id of its own.
 */
export class IdempotencyConflictError extends Error {
  constructor(
    readonly jobId: string,
    readonly clientId: string,
    readonly requestId: string,
  ) {
    super(
      `request_id "${requestId}" of client "${clientId}" was already submitted, as job ${jobId}, with a ` +
        'different input or callback_url; that first request stands: send a different request under a new request_id',
    );
    this.name = 'IdempotencyConflictError';
  }
}

export const JOB_COLUMNS = `job_id, ix_id, client_id, request_id, created_at, callback_url, input, status, attempts,
  started_at, finished_at, callback_status, response, callback_attempts`;

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
}

const STATUSES: ReadonlySet<string> = new Set(JOB_STATUSES);
const CALLBACK_STATUS_SET: ReadonlySet<string> = new Set(CALLBACK_STATUSES);
const CallbackAttemptsSchema = z.array(CallbackAttemptSchema);

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
 * named. By hand rather than through JobSchema.safeParse, which was 15% of a busy worker's CPU
 * and much of its garbage (profiled, claims of no-op jobs): the scalar columns are checked
 * directly (the uuid and timestamptz types hold their own), the JSONB documents by their schemas.
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
  const response = document(ResponseIXSchema, row.response, 'response', problems);
  const callbackAttempts = document(
    CallbackAttemptsSchema,
    row.callback_attempts,
    'callback_attempts',
    problems,
  );
  if (problems.length > 0) throw new CorruptJobError(row.job_id, problems.join('; '));
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
    created_at: isoTimestamp(row.created_at),
    started_at: row.started_at === null ? null : isoTimestamp(row.started_at),
    finished_at: row.finished_at === null ? null : isoTimestamp(row.finished_at),
  };
}

export interface InsertResult {
  job: Job;
  /** false when `(client_id, request_id)` already existed: `job` is then the first one, unchanged. */
  created: boolean;
  /** Set when the key already existed with a different request: refuse the submission. */
  conflict: IdempotencyConflictError | null;
}

/**
 * What makes two submissions of one key the same request: `input` and `callback_url` (`ix_id`
 * is the server's, the key is the key), as SQL over the columns of `alias`. Hashed from jsonb's
 * text, which is canonical (keys sorted, one spacing), so key order does not matter; numbers
 * reach it through JSON.parse, so neither does 1.0 against 1. A JSON null input and a missing
 * one are both SQL NULL here and both `null` in the array. Stored digests were made by this
 * expression: changing it makes every replay of an older job a conflict.
 */
const requestDigest = (alias: string) =>
  `sha256(convert_to(jsonb_build_array(${alias}.input, ${alias}.callback_url)::text, 'UTF8'))`;

// Returns only what PostgreSQL decides (the commit-time created_at): the rest of a new job is
// what was sent plus the column defaults. Returning every column and hydrating it through the
// contract was ~10% of the API's CPU per submit (profiled, `npm run bench:api`).
const INSERT_SQL = `
  WITH submitted AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
      AS s(job_id uuid, ix_id text, client_id text, request_id text, callback_url text, input jsonb)
  ), inserted AS (
    INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, callback_url, input, request_digest)
    -- jsonb_to_recordset reads a JSON null as SQL NULL; input null is valid JSON, kept as such.
    SELECT job_id, ix_id, client_id, request_id, callback_url, coalesce(input, 'null'::jsonb), ${requestDigest('s')}
    FROM submitted s ORDER BY job_id
    ON CONFLICT (client_id, request_id) DO NOTHING
    RETURNING job_id, created_at, pg_column_size(input) AS input_bytes
  ), queued AS (
    INSERT INTO ix_job_queue (job_id, input_bytes) SELECT job_id, input_bytes FROM inserted ORDER BY job_id
  )
  SELECT job_id, created_at FROM inserted`;

const SELECT_BY_ID_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE job_id = $1`;

const SELECT_BY_CORRELATION_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE client_id = $1 AND request_id = $2`;

/**
 * The jobs already holding the keys of submissions that were not inserted, one row per
 * submission (`i`, its index), and whether it conflicts: a different digest. A job stored
 * without one (before migration 5) never conflicts.
 */
const SELECT_REPLAYED_SQL = `
  SELECT r.i, ${JOB_COLUMNS_OF_J}, j.request_digest <> ${requestDigest('r')} AS conflict
  FROM jsonb_to_recordset($1::jsonb)
    AS r(i integer, client_id text, request_id text, callback_url text, input jsonb)
  JOIN ix_jobs j ON j.client_id = r.client_id AND j.request_id = r.request_id`;

/**
 * A named statement: each connection parses and plans it once, not on every call. The claim's
 * plan alone took 1.3 ms (EXPLAIN ANALYZE), as long as executing a claim of 50 jobs.
 */
export function prepared(name: string, text: string, values: unknown[]) {
  return { name, text, values, types: RAW_TIMESTAMPS };
}

const TIMESTAMPTZ_OID = 1184;

/**
 * Job queries take timestamptz columns as PostgreSQL's text instead of parsing each into a Date
 * only to print it again: parsing was 3% of a busy worker's CPU (profiled, no-op jobs).
 */
const RAW_TIMESTAMPS = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ_OID
      ? (text: string) => text
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** ISO 8601 as Date.toISOString() prints it (UTC, milliseconds), from a Date or PostgreSQL's text. */
export function isoTimestamp(value: Date | string): string {
  if (typeof value !== 'string') return value.toISOString();
  // PostgreSQL's UTC form, 'YYYY-MM-DD HH:MM:SS[.ffffff]+00' (ix's pools run in UTC).
  if (value.length >= 22 && value.endsWith('+00') && value[10] === ' ') {
    const fraction = value[19] === '.' ? value.slice(20, -3) : '';
    return `${value.slice(0, 10)}T${value.slice(11, 19)}.${`${fraction}000`.slice(0, 3)}Z`;
  }
  return new Date(value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString();
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === constraint;
}

export interface Submission {
  request: RequestIX;
  callbackUrl: string | null;
}

/**
 * Inserts pending jobs, idempotently on `(client_id, request_id)`: the first insert of a key
 * wins, and a replay (in an earlier call or earlier in the same batch) returns that job
 * unchanged: status, request, callback URL. A replay whose `input` or `callback_url` differs
 * from the first one's is a `conflict` (its result says so; nothing else in the batch is
 * affected). Results come in the order of `submissions`. One statement for the whole batch,
 * plus one read-only one when some keys already existed. The callers' `ix_id`s are ignored:
 * the server always assigns its own.
 *
 * It sends no NOTIFY itself: PostgreSQL serialises the commits of notifying transactions
 * (fsync included), which measured 233 inserts/s against 1,939 without, 10 callers on one
 * server. After committing created jobs, wake workers through a PendingNotifier, which
 * coalesces many inserts into one notification.
 */
export async function insertPendingMany(db: Db, submissions: readonly Submission[]): Promise<InsertResult[]> {
  if (submissions.length === 0) return [];
  let rows: PendingRow[] = [];
  let createdAt = new Map<string, string>();
  for (let tries = 0; ; tries++) {
    // Ascending ids in submission order: the queue takes the batch in job_id order, so a batch
    // is claimed in the order it was submitted (UUIDv7s drawn within one millisecond are not).
    const jobIds = submissions.map(() => newJobId()).sort();
    rows = submissions.map(({ request, callbackUrl }, i) => ({
      job_id: jobIds[i]!,
      ix_id: newIxId(),
      client_id: request.ix_client_id,
      request_id: request.request_id,
      callback_url: callbackUrl,
      input: request.input === undefined ? null : request.input,
    }));
    try {
      const inserted = await db.query<{ job_id: string; created_at: string }>(
        prepared('ix_job_insert_many', INSERT_SQL, [JSON.stringify(rows)]),
      );
      createdAt = new Map(inserted.rows.map((row) => [row.job_id, row.created_at]));
      break;
    } catch (error) {
      // 2^64 ix_ids make a collision all but impossible; if one happens, draw again.
      if (tries < 3 && isUniqueViolation(error, 'ix_jobs_ix_id_key')) continue;
      throw error;
    }
  }
  // A submission whose row was not inserted met an existing key: an earlier job, or an earlier
  // submission of this batch (the first of a key in the batch is the one inserted).
  const replayed = new Map<number, ReplayedRow>();
  const missing = rows.flatMap((row, i) => (createdAt.has(row.job_id) ? [] : [{ ...row, i }]));
  if (missing.length > 0) {
    const { rows: found } = await db.query<ReplayedRow>(
      prepared('ix_job_get_replayed', SELECT_REPLAYED_SQL, [JSON.stringify(missing)]),
    );
    for (const row of found) replayed.set(row.i, row);
  }
  return rows.map((row, i) => {
    const created = createdAt.get(row.job_id);
    if (created !== undefined) return { job: pendingJob(row, created), created: true, conflict: null };
    const found = replayed.get(i);
    if (!found) {
      // ON CONFLICT saw a row this snapshot cannot (a REPEATABLE READ caller racing another insert).
      throw new Error(
        `insertPending: (${row.client_id}, ${row.request_id}) conflicts with a row not visible to this transaction; retry`,
      );
    }
    const job = hydrate(found);
    const conflict = found.conflict
      ? new IdempotencyConflictError(job.job_id, job.client_id, job.request_id)
      : null;
    return { job, created: false, conflict };
  });
}

interface ReplayedRow extends JobRow {
  /** The index of the submission in its batch. */
  i: number;
  /** null when the job has no digest (stored before migration 5). */
  conflict: boolean | null;
}

interface PendingRow {
  job_id: string;
  ix_id: string;
  client_id: string;
  request_id: string;
  callback_url: string | null;
  input: JsonValue;
}

/** A job just inserted: the row as sent, the column defaults, and PostgreSQL's created_at. */
function pendingJob(row: PendingRow, createdAt: string): Job {
  return hydrate({
    ...row,
    created_at: createdAt,
    status: 'pending',
    attempts: 0,
    started_at: null,
    finished_at: null,
    callback_status: null,
    response: null,
    callback_attempts: null,
  });
}

/** One job; see insertPendingMany. */
export async function insertPending(
  db: Db,
  request: RequestIX,
  callbackUrl: string | null,
): Promise<InsertResult> {
  const [result] = await insertPendingMany(db, [{ request, callbackUrl }]);
  return result!;
}

export async function get(db: Db, jobId: string): Promise<Job | null> {
  const { rows } = await db.query<JobRow>(prepared('ix_job_get', SELECT_BY_ID_SQL, [jobId]));
  return rows[0] ? hydrate(rows[0]) : null;
}

export async function getByCorrelation(db: Db, clientId: string, requestId: string): Promise<Job | null> {
  const { rows } = await db.query<JobRow>(
    prepared('ix_job_get_by_correlation', SELECT_BY_CORRELATION_SQL, [clientId, requestId]),
  );
  return rows[0] ? hydrate(rows[0]) : null;
}

// `= ANY(ARRAY(…))` makes every step index lookups of exactly the picked rows: written as a
// join, the planner hashed the whole queue and sequentially scanned ix_jobs: 42 ms to claim
// 1,000 jobs with 30,000 rows in the table, against 24 ms as lookups (EXPLAIN ANALYZE).
// The final SELECT reads ix_jobs as it was before `started` changed it (a statement sees one
// snapshot), so a started job's status and started_at come from `started`.
export const CLAIM_SQL = `
  WITH candidates AS (
    SELECT seq, job_id, input_bytes FROM ix_job_queue ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
  ), chosen AS (
    SELECT seq, job_id, input_bytes, row_number() OVER (ORDER BY seq) AS n
    FROM (SELECT *, sum(input_bytes) OVER (ORDER BY seq) - input_bytes AS bytes_before FROM candidates) c
    WHERE $4::bigint IS NULL OR bytes_before < $4::bigint
  ), picked AS (
    DELETE FROM ix_job_queue WHERE seq = ANY (ARRAY (SELECT seq FROM chosen)) RETURNING job_id
  ), leased AS (
    INSERT INTO ix_job_leases (job_id, worker_id) SELECT job_id, $2 FROM picked
  ), started AS (
    UPDATE ix_jobs j SET status = 'running', started_at = now(), worker_id = $2
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM chosen WHERE n <= $3)) AND j.status = 'pending'
    RETURNING j.job_id, j.started_at
  )
  SELECT ${JOB_COLUMNS_OF_J.replace('j.status', "CASE WHEN s.job_id IS NULL THEN j.status ELSE 'running' END AS status").replace('j.started_at', 'coalesce(s.started_at, j.started_at) AS started_at')},
    j.claim_epoch, c.input_bytes
  FROM chosen c
  JOIN ix_jobs j ON j.job_id = c.job_id
  LEFT JOIN started s ON s.job_id = c.job_id
  WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM chosen)) AND j.status = 'pending'
  ORDER BY c.seq`;

/** A job as one claim holds it: enough to start it, run it and record or hand back its outcome. */
export interface Claimed {
  job: Job;
  /** Whether the claim started it (status `running`), or it waits unstarted, still `pending`. */
  started: boolean;
  /** The job's `claim_epoch` at the claim: starting it applies only while that is unchanged. */
  claimEpoch: number;
  /** The stored size of its input, counted against the claimer's byte budget. */
  inputBytes: number;
}

export interface ClaimOptions {
  limit: number;
  /** Leases the jobs to this worker; null: only the age rule of `sweepOrphans` rescues them. */
  workerId: string | null;
  /** How many of the claimed jobs (the oldest) start at once; the rest wait, `pending`. */
  startNow: number;
  /** Stop before the inputs claimed exceed this many stored bytes (one job always fits). */
  maxInputBytes?: number | null;
}

/**
 * Claims up to `limit` pending jobs, oldest first, in one statement: each is dispatched to at
 * most one caller (`FOR UPDATE SKIP LOCKED`) and leased to `workerId`, whose heartbeat keeps it.
 * The oldest `startNow` move to `running`; the rest stay `pending` until `jobStartMany`, so a
 * claimer that dies is charged an attempt only for what it had started.
 */
export async function claimJobs(db: Db, options: ClaimOptions): Promise<Claimed[]> {
  const { limit, workerId, startNow } = options;
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`claimJobs: limit must be ≥ 1, got ${limit}`);
  const { rows } = await db.query<JobRow & { claim_epoch: number; input_bytes: number }>(
    prepared('ix_job_claim', CLAIM_SQL, [limit, workerId, startNow, options.maxInputBytes ?? null]),
  );
  return rows.map((row) => ({
    job: hydrate(row),
    started: row.status === 'running',
    claimEpoch: row.claim_epoch,
    inputBytes: row.input_bytes,
  }));
}

/** Claims and starts up to `limit` jobs at once; see claimJobs. */
export async function claimPending(db: Db, limit: number, workerId: string | null = null): Promise<Job[]> {
  const claimed = await claimJobs(db, { limit, workerId, startNow: limit });
  return claimed.map((c) => c.job);
}

export async function claimNextPending(db: Db, workerId: string | null = null): Promise<Job | null> {
  return (await claimPending(db, 1, workerId))[0] ?? null;
}

// A claim is held, unstarted, while its job is `pending` at the claim's attempt and epoch: every
// way back to the queue moves the epoch on. Running already, at the same attempt and epoch, by
// this worker: an earlier try of this very start that committed but whose answer was lost.
const START_SQL = `
  UPDATE ix_jobs j SET status = 'running', worker_id = $4,
    started_at = CASE WHEN j.status = 'pending' THEN now() ELSE j.started_at END
  FROM unnest($1::uuid[], $2::integer[], $3::integer[]) AS s(job_id, attempt, claim_epoch)
  WHERE j.job_id = s.job_id AND j.attempts = s.attempt AND j.claim_epoch = s.claim_epoch
    AND (j.status = 'pending' OR (j.status = 'running' AND j.worker_id = $4))
  RETURNING j.job_id, j.started_at`;

/**
 * Marks claimed jobs `running`: from then on a worker that dies costs them an attempt, and the
 * API shows them started. Applies only to a claim still held: one handed back meanwhile (its
 * epoch moved on) is left alone. Returns each started job's `started_at` by job id.
 */
export async function jobStartMany(
  db: Db,
  workerId: string,
  claims: readonly Pick<Claimed, 'job' | 'claimEpoch'>[],
): Promise<Map<string, string>> {
  if (claims.length === 0) return new Map();
  const { rows } = await db.query<{ job_id: string; started_at: string }>(
    prepared('ix_job_start_many', START_SQL, [
      claims.map((c) => c.job.job_id),
      claims.map((c) => c.job.attempts),
      claims.map((c) => c.claimEpoch),
      workerId,
    ]),
  );
  return new Map(rows.map((row) => [row.job_id, isoTimestamp(row.started_at)]));
}

export interface Outcome {
  jobId: string;
  /** The `attempts` the job had when claimed: an outcome applies only to that attempt. */
  attempt: number;
  /** The `claim_epoch` it had when claimed (0 if never handed back unstarted). */
  claimEpoch?: number;
  /** When its pipeline was called, for a job whose start was never marked: its `started_at`. */
  startedAt?: string | null;
  response: ResponseIX;
  /** `done` iff `response.error` is null, unless forced to `error`. */
  status: 'done' | 'error';
  /** `response` as JSON, when the caller has written it already (and so knows it can be). */
  responseJson?: string;
}

/** How an outcome is told apart from another attempt's outcome of the same job. */
export const outcomeKey = (jobId: string, attempt: number): string => `${jobId}/${attempt}`;

// An outcome belongs to the claim that ran it: the job is still held at the same attempt and
// claim epoch, either `running` or claimed but never marked started (a worker runs fresh jobs
// without waiting for that mark; see jobStartMany). A lease row exists while a job is claimed,
// and every way back to the queue deletes it and moves the attempt or the epoch on.
const COMPLETE_SQL = `
  WITH outcome AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
      AS o(job_id uuid, attempt integer, claim_epoch integer, started_at timestamptz, status text, response jsonb)
  ), finished AS (
    UPDATE ix_jobs j SET status = o.status, response = o.response, finished_at = now(),
      started_at = coalesce(j.started_at, least(o.started_at, now()), now())
    FROM outcome o
    WHERE j.job_id = o.job_id AND j.attempts = o.attempt AND j.claim_epoch = o.claim_epoch
      AND (j.status = 'running'
        OR (j.status = 'pending' AND EXISTS (SELECT 1 FROM ix_job_leases l WHERE l.job_id = j.job_id)))
    RETURNING j.job_id, o.attempt, j.callback_url
  ), released AS (
    DELETE FROM ix_job_leases l USING finished WHERE l.job_id = finished.job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM finished WHERE callback_url IS NOT NULL
  )
  SELECT job_id, attempt FROM finished`;

/**
 * Records outcomes, many in one statement. Each applies only while its job is `running` at the
 * same attempt, so terminal states never change and a worker whose job was swept and claimed
 * again cannot overwrite the newer attempt. Returns the `outcomeKey`s that applied. A job with
 * a callback URL is queued for delivery in the same statement, so the outcome and the duty to
 * deliver it are durable together. One outcome PostgreSQL cannot store fails the whole
 * statement: callers record a failed batch's outcomes one by one to find it.
 */
export async function completeMany(db: Db, outcomes: readonly Outcome[]): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const parts = outcomes.map((o) => {
    if ((o.status === 'done') !== (o.response.error === null)) {
      throw new Error(
        `job ${o.jobId}: status ${o.status} contradicts response.error ${JSON.stringify(o.response.error)}`,
      );
    }
    // Ids, numbers, status and timestamps are plain tokens: only the response needs JSON.stringify.
    const response = o.responseJson ?? JSON.stringify(o.response);
    const startedAt = o.startedAt ? `"${o.startedAt}"` : 'null';
    return `{"job_id":"${o.jobId}","attempt":${o.attempt},"claim_epoch":${o.claimEpoch ?? 0},"started_at":${startedAt},"status":"${o.status}","response":${response}}`;
  });
  const { rows } = await db.query<{ job_id: string; attempt: number }>(
    prepared('ix_job_complete_many', COMPLETE_SQL, [`[${parts.join(',')}]`]),
  );
  return new Set(rows.map((r) => outcomeKey(r.job_id, r.attempt)));
}

/** `done` iff `response.error` is null, else `error`; false when the attempt no longer runs. */
export async function markDone(
  db: Db,
  jobId: string,
  attempt: number,
  response: ResponseIX,
): Promise<boolean> {
  const status = response.error === null ? 'done' : 'error';
  return (await completeMany(db, [{ jobId, attempt, response, status }])).has(outcomeKey(jobId, attempt));
}

/** Always `error` (so the response must carry one); false when the attempt no longer runs. */
export async function markError(
  db: Db,
  jobId: string,
  attempt: number,
  response: ResponseIX & { error: string },
): Promise<boolean> {
  return (await completeMany(db, [{ jobId, attempt, response, status: 'error' }])).has(
    outcomeKey(jobId, attempt),
  );
}

/** Never touches `status`; returns whether the job exists. */
export async function updateCallbackStatus(db: Db, jobId: string, status: CallbackStatus): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE ix_jobs SET callback_status = $2 WHERE job_id = $1', [
    jobId,
    status,
  ]);
  return rowCount === 1;
}

export interface SweepOptions {
  /** The clock, injected so tests need no sleeping; default: the database's now(). */
  now?: Date | null;
  /** A running job older than this is rescued whatever its worker says (the seed's rule). */
  maxRunningSeconds: number;
  /** A running job whose worker's heartbeat is older than this is rescued; null: rule off. */
  heartbeatTimeoutSeconds?: number | null;
  /** A job rescued for the `maxAttempts`-th time ends `error` instead; null: retried forever. */
  maxAttempts?: number | null;
}

export interface SweepResult {
  /** Had started: back to `pending` with `attempts + 1`. */
  requeued: string[];
  /** Claimed but never started: back to the queue as they were, `attempts` unchanged. */
  returned: string[];
  /** Ended `error`: abandoned after `maxAttempts` attempts. */
  abandoned: string[];
}

// How a job held by a worker goes back: a started one (`running`) is charged an attempt, or at
// the budget abandoned; an unstarted claim (`pending` with a lease) is handed back as it was,
// its claim_epoch moved on so the stale claim can never start it. Used by the sweep and by a
// worker's own release; `held` names the job rows, locked (as UPDATE targets) before their
// lease rows, the same order as completion, so one racing another waits instead of deadlocking,
// and the re-checked status, attempts and epoch then skip what the other already moved.
const HAND_BACK = `
  moved AS (
    UPDATE ix_jobs j SET
      attempts = j.attempts + CASE WHEN h.status = 'running' THEN 1 ELSE 0 END,
      claim_epoch = j.claim_epoch + CASE WHEN h.status = 'pending' THEN 1 ELSE 0 END,
      started_at = NULL,
      worker_id = NULL,
      status = CASE WHEN h.status = 'running' AND j.attempts + 1 >= h.max_attempts THEN 'error' ELSE 'pending' END,
      finished_at = CASE WHEN h.status = 'running' AND j.attempts + 1 >= h.max_attempts THEN now() END,
      response = CASE WHEN h.status = 'running' AND j.attempts + 1 >= h.max_attempts THEN jsonb_build_object(
        'ix_id', j.ix_id, 'result', NULL,
        'error', format('abandoned after %s attempts: each attempt''s worker died or stalled', j.attempts + 1)) END
    FROM held h
    WHERE j.job_id = h.job_id AND j.status = h.status AND j.attempts = h.attempt AND j.claim_epoch = h.claim_epoch
    RETURNING j.job_id, j.status, h.status AS was, j.callback_url, pg_column_size(j.input) AS input_bytes
  ), released AS (
    DELETE FROM ix_job_leases l USING moved WHERE l.job_id = moved.job_id
  ), requeued AS (
    INSERT INTO ix_job_queue (job_id, input_bytes)
    SELECT job_id, input_bytes FROM moved WHERE status = 'pending' ORDER BY job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM moved WHERE status = 'error' AND callback_url IS NOT NULL
  )
  SELECT job_id, status, was FROM moved`;

interface HandedBack {
  job_id: string;
  status: string;
  was: string;
}

function handedBack(rows: readonly HandedBack[]): SweepResult {
  const result: SweepResult = { requeued: [], returned: [], abandoned: [] };
  for (const row of rows) {
    if (row.status === 'error') result.abandoned.push(row.job_id);
    else (row.was === 'running' ? result.requeued : result.returned).push(row.job_id);
  }
  return result;
}

// The age rule applies to started jobs only: a claim waiting in a live worker's buffer is that
// worker's, however long it waits. `finished_at = now()` in HAND_BACK is the database clock; the
// injected clock only decides who is stale.
const SWEEP_SQL = `
  WITH params AS (
    SELECT coalesce($1::timestamptz, now()) AS now, $2::integer AS max_running, $3::integer AS heartbeat_timeout,
      $4::integer AS max_attempts
  ), held AS (
    SELECT j.job_id, j.status, j.attempts AS attempt, j.claim_epoch, p.max_attempts
    FROM ix_job_leases l
    JOIN ix_jobs j ON j.job_id = l.job_id
    LEFT JOIN ix_workers w ON w.worker_id = l.worker_id
    CROSS JOIN params p
    WHERE j.status IN ('running', 'pending') AND (
      (j.status = 'running' AND j.started_at < p.now - make_interval(secs => p.max_running))
      OR (p.heartbeat_timeout IS NOT NULL AND l.worker_id IS NOT NULL
          AND (w.worker_id IS NULL OR w.heartbeat_at < p.now - make_interval(secs => p.heartbeat_timeout))))
  ), ${HAND_BACK}`;

/**
 * Rescues the jobs of workers that are gone (stale heartbeat, or no worker row) and started jobs
 * that have run longer than `maxRunningSeconds`: a started one back to `pending` with
 * `attempts + 1` (at `maxAttempts`, `error` instead), an unstarted claim back to the queue as it
 * was. One statement; safe to run in many workers at once. Workers are woken for what went back.
 */
export async function sweepOrphans(db: Db, options: SweepOptions): Promise<SweepResult> {
  const { rows } = await db.query<HandedBack>(SWEEP_SQL, [
    options.now ?? null,
    options.maxRunningSeconds,
    options.heartbeatTimeoutSeconds ?? null,
    options.maxAttempts ?? null,
  ]);
  const result = handedBack(rows);
  if (result.requeued.length + result.returned.length > 0) await notifyPending(db);
  return result;
}

export interface Held {
  jobId: string;
  attempt: number;
  claimEpoch: number;
  /** Whether its pipeline was started (it is then charged an attempt). */
  started: boolean;
}

const RELEASE_SQL = `
  WITH held AS (
    SELECT job_id, CASE WHEN started THEN 'running' ELSE 'pending' END AS status, attempt, claim_epoch,
      NULL::integer AS max_attempts
    FROM jsonb_to_recordset($1::jsonb) AS h(job_id uuid, attempt integer, claim_epoch integer, started boolean)
  ), ${HAND_BACK}`;

/**
 * Puts jobs a worker holds back to `pending` at once (graceful shutdown): a started one, whose
 * pipeline is being aborted, with `attempts + 1`; an unstarted claim as it was. Returns the ids
 * that went back.
 */
export async function releaseJobs(db: Db, held: readonly Held[]): Promise<string[]> {
  if (held.length === 0) return [];
  const payload = held.map((h) => ({
    job_id: h.jobId,
    attempt: h.attempt,
    claim_epoch: h.claimEpoch,
    started: h.started,
  }));
  const { rows } = await db.query<HandedBack>(RELEASE_SQL, [JSON.stringify(payload)]);
  if (rows.length > 0) await notifyPending(db);
  return rows.map((r) => r.job_id);
}

export async function notifyPending(db: Db): Promise<void> {
  await db.query(`SELECT pg_notify('${PENDING_CHANNEL}', '')`);
}

/**
 * Wakes idle workers after jobs were committed, coalescing: at most one NOTIFY is in flight per
 * process, and every call made meanwhile is covered by one more afterwards. A lost
 * notification only costs latency: workers also poll.
 */
export class PendingNotifier {
  private inFlight: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly pool: Pick<Db, 'query'>,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  notify(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.send();
  }

  /** Resolves once every notification asked for so far has been sent. */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async send(): Promise<void> {
    do {
      this.again = false;
      try {
        await notifyPending(this.pool);
      } catch (error) {
        this.onError(error);
      }
    } while (this.again);
    this.inFlight = null;
  }
}

/** Registers the worker or renews its heartbeat: its leases stay its own while this is fresh. */
export async function workerHeartbeat(db: Db, workerId: string): Promise<void> {
  await db.query(
    `INSERT INTO ix_workers (worker_id, hostname, pid) VALUES ($1, $2, $3)
     ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()`,
    [workerId, hostname(), process.pid],
  );
}

export async function workerRemove(db: Db, workerId: string): Promise<void> {
  await db.query('DELETE FROM ix_workers WHERE worker_id = $1', [workerId]);
}

/** Forgets workers silent for longer than `olderThanSeconds` that hold no lease any more. */
export async function workerPruneStale(
  db: Db,
  olderThanSeconds: number,
  now: Date | null = null,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM ix_workers w
     WHERE w.heartbeat_at < coalesce($1::timestamptz, now()) - make_interval(secs => $2)
       AND NOT EXISTS (SELECT 1 FROM ix_job_leases l WHERE l.worker_id = w.worker_id)`,
    [now, olderThanSeconds],
  );
  return rowCount ?? 0;
}
