/**
 * Submitting jobs: the insert of new jobs with their queue rows, idempotent on
 * `(client_id, request_id)`, and the rule that tells a retry from a different request.
 */
import pg from 'pg';
import type { Job, RequestIX } from '../../contracts/index.js';
import { Pause } from '../../time.js';
import type { Db } from '../db.js';
import { newIxId, newJobId } from '../ids.js';
import { batchRows } from './batch-rows.js';
import { jobRequestDigest, requestDigest } from './digest.js';
import { hydrate, isoTimestamp, JOB_COLUMNS_OF_J, type JobRow, prepared } from './hydrate.js';
import { batchColumns, inputOf, pendingJob } from './insert-batch.js';
import { JobGoneError, TOMBSTONE_COLUMNS_OF_T, type TombstoneRow, tombstoneOf } from './tombstones.js';

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

export interface Submission {
  request: RequestIX;
  callbackUrl: string | null;
  /** Not claimed before this time (RFC 3339); at most one of runAfter and delaySeconds. */
  runAfter?: string | null;
  /** Not claimed before this many seconds from the insert (the database's clock). */
  delaySeconds?: number | null;
  /** Its budget of runs; null: the server's IX_MAX_ATTEMPTS, read when it runs. */
  maxAttempts?: number | null;
  /** How urgent among its client's jobs, 0 (default) to 9, higher first. */
  priority?: number;
}

/** A submission whose key holds a job: a new one, or the first one of the key. */
export interface Admitted {
  job: Job;
  /** false when `(client_id, request_id)` already existed: `job` is then the first one, unchanged. */
  created: boolean;
  /** Set when the key already existed with a different request: refuse the submission. */
  conflict: IdempotencyConflictError | null;
}

/** A submission whose key's job was pruned: only its tombstone is left. */
export interface Pruned {
  job: null;
  created: false;
  /** Refuse the submission: a JobGoneError for the same request, a conflict for another. */
  conflict: JobGoneError | IdempotencyConflictError;
}

export type InsertResult = Admitted | Pruned;

// Returns one row, only what PostgreSQL decides: the commit-time created_at, which submissions were
// inserted (only when some were not), and the run_after of scheduled ones. The rest of a new job is
// what was sent plus the column defaults, which spares the API reading back and checking every
// column (docs/design.md, "Costs measured on the hot path"), and Node parsing a row per job.
//
// $1 holds the batch as one array a column, each in submission order (BatchColumns, insert-batch.ts;
// read by batchRows): over one object a submission, jsonb_to_recordset cost ~2.1 µs more a job of
// PostgreSQL's ~18. A column whose values are all its default is left out.
//
// `conflicts` says what becomes of a submission whose key holds a job: with ON CONFLICT DO NOTHING
// (INSERT_SQL) it is skipped; without (INSERT_NEW_SQL) it fails the statement. The speculative
// insertion behind ON CONFLICT probes the key's index before each row and confirms the row after:
// ~2.3 µs of PostgreSQL's ~20 a job in inserts of 1,000 new keys (the backend's CPU time).
const insertSql = (conflicts: 'ON CONFLICT (client_id, request_id) DO NOTHING' | '') => `
  WITH submitted AS (
    SELECT job_id::uuid, ix_id, client_id, request_id, callback_url, input, run_after::timestamptz,
      delay_seconds::double precision, max_attempts::integer, coalesce(priority::smallint, 0) AS priority
    FROM ${batchRows(
      '$1',
      's',
      [
        'job_id',
        'ix_id',
        'client_id',
        'request_id',
        'callback_url',
        'input',
        'run_after',
        'delay_seconds',
        'max_attempts',
        'priority',
      ],
      { jsonb: ['input'] },
    )}
  ), inserted AS (
    INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, callback_url, input, run_after, max_attempts, priority)
    SELECT job_id, ix_id, client_id, request_id, callback_url, input,
      coalesce(s.run_after, now() + make_interval(secs => s.delay_seconds)), max_attempts, priority
    FROM submitted s
    -- A pruned job's key stays taken while its tombstone lives: one probe of the tombstones'
    -- primary key per submission (docs/design.md, "Retention").
    WHERE NOT EXISTS (
      SELECT 1 FROM ix_job_tombstones t WHERE t.client_id = s.client_id AND t.request_id = s.request_id)
    ORDER BY job_id
    ${conflicts}
    RETURNING job_id, client_id, priority, run_after, pg_column_size(input) AS input_bytes
  ), queued AS (
    -- A time already past is ready now: it does not jump ahead of jobs that were ready before.
    INSERT INTO ix_job_queue (job_id, client_id, priority, input_bytes, ready_at)
    SELECT job_id, client_id, priority, input_bytes, greatest(run_after, now()) FROM inserted ORDER BY job_id
  )
  SELECT now() AS created_at,
    CASE WHEN count(*) < jsonb_array_length($1::jsonb -> 'job_id') THEN coalesce(array_agg(job_id), '{}') END AS inserted_ids,
    json_object_agg(job_id, run_after) FILTER (WHERE run_after IS NOT NULL) AS run_after_by_id
  FROM inserted`;

const INSERT_SQL = insertSql('ON CONFLICT (client_id, request_id) DO NOTHING');
const INSERT_NEW_SQL = insertSql('');

interface InsertedRow {
  /** Every job's created_at: the transaction's start, now(). */
  created_at: string;
  /** The job ids inserted; null when every submission was. */
  inserted_ids: string[] | null;
  /** The run_after of each inserted job that has one, as JSON encodes a timestamptz. */
  run_after_by_id: Record<string, string> | null;
}

/**
 * The jobs already holding the keys of submissions that were not inserted, one row per
 * submission (`i`, its index), and whether it conflicts: a different digest (the job's is made
 * from its row unless it kept one: jobRequestDigest).
 */
const SELECT_REPLAYED_SQL = `
  SELECT r.i, ${JOB_COLUMNS_OF_J}, ${jobRequestDigest('j')} <> ${requestDigest('r')} AS conflict
  FROM jsonb_to_recordset($1::jsonb)
    AS r(i integer, client_id text, request_id text, callback_url text, input jsonb)
  JOIN ix_jobs j ON j.client_id = r.client_id AND j.request_id = r.request_id`;

/** The tombstones of keys whose job is gone, one row per submission (`i`), as SELECT_REPLAYED_SQL. */
const SELECT_PRUNED_SQL = `
  SELECT r.i, ${TOMBSTONE_COLUMNS_OF_T}, t.request_digest <> ${requestDigest('r')} AS conflict
  FROM jsonb_to_recordset($1::jsonb)
    AS r(i integer, client_id text, request_id text, callback_url text, input jsonb)
  JOIN ix_job_tombstones t ON t.client_id = r.client_id AND t.request_id = r.request_id`;

interface Replayed {
  /** The index of the submission in its batch. */
  i: number;
  /**
   * null for a tombstone without a digest: its job was stored before migration 5 and pruned before
   * migration 16. A job's is made from its row when it has none (jobRequestDigest).
   */
  conflict: boolean | null;
}

type ReplayedRow = JobRow & Replayed;
type PrunedRow = TombstoneRow & Replayed;

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === constraint;
}

/**
 * Inserts pending jobs, idempotently on `(client_id, request_id)`: the first insert of a key
 * wins, and a replay (in an earlier call or earlier in the same batch) returns that job
 * unchanged: status, request, callback URL. A replay whose `input` or `callback_url` differs
 * from the first one's is a `conflict` (its result says so; nothing else in the batch is
 * affected). A key whose job was pruned while its tombstone lives is never inserted again: its
 * result carries a JobGoneError (or a conflict, for a different request). Results come in the
 * order of `submissions`. One statement for the whole batch (a second when a batch's first
 * try meets a key in use: insertBatch), plus one read-only one when some keys already existed,
 * and another when some of those were pruned. The callers' `ix_id`s are ignored: the server
 * always assigns its own.
 *
 * It sends no NOTIFY itself: PostgreSQL serialises the commits of transactions that notify,
 * which turns concurrent submitters into one (measured in docs/design.md, "Waking workers").
 * After committing created jobs, wake workers through a Notifier.pending, or jobNotifyPending.
 */
export async function jobInsertMany(db: Db, submissions: readonly Submission[]): Promise<InsertResult[]> {
  if (submissions.length === 0) return [];
  let jobIds: string[] = [];
  let ixIds: string[] = [];
  let inserted: InsertedRow | undefined;
  for (let tries = 0; ; tries++) {
    // Ascending ids in submission order: the queue takes the batch in job_id order, so a batch
    // is claimed in the order it was submitted (UUIDv7s drawn within one millisecond are not).
    // Its ix_ids ascend with them, so the batch's rows go into the unique index on ix_id at its
    // right end, in order, as into the primary key.
    jobIds = submissions.map(() => newJobId()).sort();
    ixIds = submissions.map(() => newIxId()).sort();
    try {
      const batch = JSON.stringify(batchColumns(submissions, jobIds, ixIds));
      inserted = await insertBatch(db, batch);
      break;
    } catch (error) {
      // 2^64 ix_ids make a collision all but impossible; if one happens, draw again.
      if (tries < 3 && isUniqueViolation(error, 'ix_jobs_ix_id_key')) continue;
      throw error;
    }
  }
  if (inserted === undefined) throw new Error('jobInsertMany: the insert returned no row');
  const createdAt = isoTimestamp(inserted.created_at);
  const runAfterById = inserted.run_after_by_id;
  const insertedIds = inserted.inserted_ids === null ? null : new Set(inserted.inserted_ids);
  const created = (i: number) => insertedIds === null || insertedIds.has(jobIds[i]!);
  // A submission whose row was not inserted met an existing key: an earlier job, or an earlier
  // submission of this batch (the first of a key in the batch is the one inserted).
  const replayed = new Map<number, ReplayedRow>();
  const missing = submissions.flatMap(({ request, callbackUrl }, i) =>
    created(i)
      ? []
      : [
          {
            i,
            client_id: request.ix_client_id,
            request_id: request.request_id,
            callback_url: callbackUrl,
            input: inputOf(request),
          },
        ],
  );
  if (missing.length > 0) {
    const { rows: found } = await db.query<ReplayedRow>(
      prepared('ix_job_get_replayed', SELECT_REPLAYED_SQL, [JSON.stringify(missing)]),
    );
    for (const row of found) replayed.set(row.i, row);
  }
  const pruned = new Map<number, PrunedRow>();
  const gone = missing.filter((row) => !replayed.has(row.i));
  if (gone.length > 0) {
    const { rows: found } = await db.query<PrunedRow>(
      prepared('ix_job_get_pruned', SELECT_PRUNED_SQL, [JSON.stringify(gone)]),
    );
    for (const row of found) pruned.set(row.i, row);
  }
  return submissions.map((submission, i) => {
    const jobId = jobIds[i]!;
    if (created(i)) {
      const job = pendingJob(submission, jobId, ixIds[i]!, createdAt, runAfterById?.[jobId] ?? null);
      return { job, created: true, conflict: null };
    }
    const found = replayed.get(i);
    const tombstone = pruned.get(i);
    if (!found && tombstone) {
      const conflict = tombstone.conflict
        ? new IdempotencyConflictError(tombstone.job_id, tombstone.client_id, tombstone.request_id)
        : new JobGoneError(tombstoneOf(tombstone));
      return { job: null, created: false, conflict };
    }
    if (!found) {
      // ON CONFLICT saw a row this snapshot cannot (a REPEATABLE READ caller racing another insert).
      throw new Error(
        `jobInsertMany: (${submission.request.ix_client_id}, ${submission.request.request_id}) conflicts with a row not visible to this transaction; retry`,
      );
    }
    const job = hydrate(found);
    const conflict = found.conflict
      ? new IdempotencyConflictError(job.job_id, job.client_id, job.request_id)
      : null;
    return { job, created: false, conflict };
  });
}

/** After a failed try of INSERT_NEW_SQL (a key in use), every batch takes INSERT_SQL at once for 30 s. */
const newKeysPause = new Pause(30_000);

/**
 * Inserts `batch` (BatchColumns, as JSON) and returns the insert's row. A batch whose failed
 * statement rolls back nothing else (on a pool, or a client outside a transaction block) is first
 * tried as new keys only; a key in use (a replay, a key twice in the batch, a concurrent insert)
 * fails that try, and the batch goes through ON CONFLICT. Replays come in runs (a client resending
 * a batch, an overloaded API's timed-out callers), so after a failed try every batch of this
 * process takes ON CONFLICT at once for a while: a failed try (a statement, ~350 µs of
 * PostgreSQL's CPU) is wasted at most once a pause, whatever the batch's size, against 48 bytes of
 * WAL (the speculative insertion's confirm record, 5 % of a single submit's) and ~2.3 µs saved
 * for every job inserted without ON CONFLICT.
 */
async function insertBatch(db: Db, batch: string): Promise<InsertedRow | undefined> {
  if (!newKeysPause.active && outsideTransaction(db)) {
    try {
      const { rows } = await db.query<InsertedRow>(prepared('ix_job_insert_new', INSERT_NEW_SQL, [batch]));
      return rows[0];
    } catch (error) {
      if (!isUniqueViolation(error, 'ix_jobs_correlation_key')) throw error;
      newKeysPause.start();
    }
  }
  const { rows } = await db.query<InsertedRow>(prepared('ix_job_insert_many', INSERT_SQL, [batch]));
  return rows[0];
}

/**
 * Whether a statement on `db` is a transaction of its own: a pool's always is; a client's is
 * when it is outside a transaction block (its last ReadyForQuery said idle, 'I').
 */
function outsideTransaction(db: Db): boolean {
  if (db instanceof pg.Pool) return true;
  const client = db as Partial<Pick<pg.ClientBase, 'getTransactionStatus'>>;
  return client.getTransactionStatus?.() === 'I';
}
