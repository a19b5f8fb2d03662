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
    RETURNING job_id, created_at
  ), queued AS (
    INSERT INTO ix_job_queue (job_id) SELECT job_id FROM inserted ORDER BY job_id
  )
  SELECT job_id, created_at FROM inserted`;

const SELECT_BY_ID_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE job_id = $1`;

const SELECT_BY_CORRELATION_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE client_id = $1 AND request_id = $2`;

/**
 * The jobs already holding the keys of submissions that were not inserted, one row per
 * submission (`i`, its index), and whether it conflicts: a different digest. A job stored
 * without one (before migration 4) never conflicts.
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
  /** null when the job has no digest (stored before migration 4). */
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

// `= ANY(ARRAY(…))` makes both steps index lookups of exactly the picked rows: written as a
// join, the planner hashed the whole queue and sequentially scanned ix_jobs: 42 ms to claim
// 1,000 jobs with 30,000 rows in the table, against 24 ms as lookups (EXPLAIN ANALYZE).
export const CLAIM_SQL = `
  WITH picked AS (
    DELETE FROM ix_job_queue
    WHERE seq = ANY (ARRAY (SELECT seq FROM ix_job_queue ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED))
    RETURNING seq, job_id
  ), leased AS (
    INSERT INTO ix_job_leases (job_id, worker_id) SELECT job_id, $2 FROM picked
  ), claimed AS (
    UPDATE ix_jobs j SET status = 'running', started_at = now(), worker_id = $2
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM picked)) AND j.status = 'pending'
    RETURNING ${JOB_COLUMNS_OF_J}
  )
  SELECT claimed.* FROM claimed JOIN picked USING (job_id) ORDER BY picked.seq`;

/**
 * Claims up to `limit` pending jobs, oldest first, in one statement: each is dispatched to at
 * most one caller (`FOR UPDATE SKIP LOCKED`), moves to `running` and is leased to `workerId`,
 * whose heartbeat keeps it (null: only the age rule of `sweepOrphans` rescues it).
 */
export async function claimPending(db: Db, limit: number, workerId: string | null = null): Promise<Job[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`claimPending: limit must be ≥ 1, got ${limit}`);
  const { rows } = await db.query<JobRow>(prepared('ix_job_claim_many', CLAIM_SQL, [limit, workerId]));
  return rows.map(hydrate);
}

export async function claimNextPending(db: Db, workerId: string | null = null): Promise<Job | null> {
  return (await claimPending(db, 1, workerId))[0] ?? null;
}

export interface Outcome {
  jobId: string;
  /** The `attempts` the job had when claimed: an outcome applies only to that attempt. */
  attempt: number;
  response: ResponseIX;
  /** `done` iff `response.error` is null, unless forced to `error`. */
  status: 'done' | 'error';
}

const COMPLETE_SQL = `
  WITH outcome AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS o(job_id uuid, attempt integer, status text, response jsonb)
  ), finished AS (
    UPDATE ix_jobs j SET status = o.status, response = o.response, finished_at = now()
    FROM outcome o
    WHERE j.job_id = o.job_id AND j.status = 'running' AND j.attempts = o.attempt
    RETURNING j.job_id, j.callback_url
  ), released AS (
    DELETE FROM ix_job_leases l USING finished WHERE l.job_id = finished.job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM finished WHERE callback_url IS NOT NULL
  )
  SELECT job_id FROM finished`;

/**
 * Records outcomes, many in one statement. Each applies only while its job is `running` at the
 * same attempt, so terminal states never change and a worker whose job was swept and claimed
 * again cannot overwrite the newer attempt. Returns the ids that applied. A job with a callback
 * URL is queued for delivery in the same statement, so the outcome and the duty to deliver it
 * are durable together.
 */
export async function completeMany(db: Db, outcomes: readonly Outcome[]): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const payload = outcomes.map((o) => {
    if ((o.status === 'done') !== (o.response.error === null)) {
      throw new Error(
        `job ${o.jobId}: status ${o.status} contradicts response.error ${JSON.stringify(o.response.error)}`,
      );
    }
    return { job_id: o.jobId, attempt: o.attempt, status: o.status, response: o.response };
  });
  const { rows } = await db.query<{ job_id: string }>(
    prepared('ix_job_complete_many', COMPLETE_SQL, [JSON.stringify(payload)]),
  );
  return new Set(rows.map((r) => r.job_id));
}

/** `done` iff `response.error` is null, else `error`; false when the attempt no longer runs. */
export async function markDone(
  db: Db,
  jobId: string,
  attempt: number,
  response: ResponseIX,
): Promise<boolean> {
  const status = response.error === null ? 'done' : 'error';
  return (await completeMany(db, [{ jobId, attempt, response, status }])).has(jobId);
}

/** Always `error` (so the response must carry one); false when the attempt no longer runs. */
export async function markError(
  db: Db,
  jobId: string,
  attempt: number,
  response: ResponseIX & { error: string },
): Promise<boolean> {
  return (await completeMany(db, [{ jobId, attempt, response, status: 'error' }])).has(jobId);
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
  /** Back to `pending` with `attempts + 1`. */
  requeued: string[];
  /** Ended `error`: abandoned after `maxAttempts` attempts. */
  abandoned: string[];
}

// Locks the job row before its lease, the same order as completion, so a sweep racing a
// completion waits instead of deadlocking; the re-checked `status`/`attempts` then skip it.
const SWEEP_SQL = `
  WITH params AS (
    SELECT coalesce($1::timestamptz, now()) AS now, $2::integer AS max_running, $3::integer AS heartbeat_timeout,
      $4::integer AS max_attempts
  ), stale AS (
    SELECT j.job_id, j.attempts
    FROM ix_job_leases l
    JOIN ix_jobs j ON j.job_id = l.job_id
    LEFT JOIN ix_workers w ON w.worker_id = l.worker_id
    CROSS JOIN params p
    WHERE j.status = 'running' AND (
      j.started_at < p.now - make_interval(secs => p.max_running)
      OR (p.heartbeat_timeout IS NOT NULL AND l.worker_id IS NOT NULL
          AND (w.worker_id IS NULL OR w.heartbeat_at < p.now - make_interval(secs => p.heartbeat_timeout))))
  ), moved AS (
    UPDATE ix_jobs j SET
      attempts = j.attempts + 1,
      started_at = NULL,
      worker_id = NULL,
      status = CASE WHEN j.attempts + 1 >= p.max_attempts THEN 'error' ELSE 'pending' END,
      finished_at = CASE WHEN j.attempts + 1 >= p.max_attempts THEN p.now END,
      response = CASE WHEN j.attempts + 1 >= p.max_attempts THEN jsonb_build_object(
        'ix_id', j.ix_id, 'result', NULL,
        'error', format('abandoned after %s attempts: each attempt''s worker died or stalled', j.attempts + 1)) END
    FROM stale s CROSS JOIN params p
    WHERE j.job_id = s.job_id AND j.status = 'running' AND j.attempts = s.attempts
    RETURNING j.job_id, j.status, j.callback_url
  ), released AS (
    DELETE FROM ix_job_leases l USING moved WHERE l.job_id = moved.job_id
  ), requeued AS (
    INSERT INTO ix_job_queue (job_id) SELECT job_id FROM moved WHERE status = 'pending'
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM moved WHERE status = 'error' AND callback_url IS NOT NULL
  )
  SELECT job_id, status FROM moved`;

/**
 * Rescues running jobs whose worker is gone (stale heartbeat) or that have run longer than
 * `maxRunningSeconds`: back to `pending` with `attempts + 1` and `started_at` cleared, or, at
 * `maxAttempts`, to `error`. One statement; safe to run in many workers at once. Pending and
 * terminal jobs are never touched. Workers are woken for requeued jobs on commit.
 */
export async function sweepOrphans(db: Db, options: SweepOptions): Promise<SweepResult> {
  const { rows } = await db.query<{ job_id: string; status: string }>(SWEEP_SQL, [
    options.now ?? null,
    options.maxRunningSeconds,
    options.heartbeatTimeoutSeconds ?? null,
    options.maxAttempts ?? null,
  ]);
  const result: SweepResult = { requeued: [], abandoned: [] };
  for (const row of rows) (row.status === 'pending' ? result.requeued : result.abandoned).push(row.job_id);
  if (result.requeued.length > 0) await notifyPending(db);
  return result;
}

export interface Held {
  jobId: string;
  attempt: number;
}

const RELEASE_SQL = `
  WITH held AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS h(job_id uuid, attempt integer)
  ), moved AS (
    UPDATE ix_jobs j SET status = 'pending', started_at = NULL, worker_id = NULL,
      attempts = j.attempts + CASE WHEN $2::boolean THEN 1 ELSE 0 END
    FROM held h WHERE j.job_id = h.job_id AND j.status = 'running' AND j.attempts = h.attempt
    RETURNING j.job_id
  ), released AS (
    DELETE FROM ix_job_leases l USING moved WHERE l.job_id = moved.job_id
  ), requeued AS (
    INSERT INTO ix_job_queue (job_id) SELECT job_id FROM moved
  )
  SELECT job_id FROM moved`;

/**
 * Puts jobs a worker holds back to `pending` at once (graceful shutdown). `countAttempt` is
 * false for jobs that never started (prefetched), true for ones whose pipeline was aborted.
 */
export async function releaseJobs(db: Db, held: readonly Held[], countAttempt: boolean): Promise<string[]> {
  if (held.length === 0) return [];
  const payload = JSON.stringify(held.map((h) => ({ job_id: h.jobId, attempt: h.attempt })));
  const { rows } = await db.query<{ job_id: string }>(RELEASE_SQL, [payload, countAttempt]);
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
