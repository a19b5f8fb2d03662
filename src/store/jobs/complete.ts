/**
 * Recording outcomes: a job ends `done`, `error` or `cancelled`, or goes back to wait for a retry, fenced on
 * the claim that ran it.
 */
import type { JobStatus, ResponseIX } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { batchRows } from './batch-rows.js';
import { CANCELLED_ERROR } from './cancel.js';
import { prepared } from './hydrate.js';
import { appendRun, isLastAttempt } from './runs.js';

export interface Outcome {
  jobId: string;
  /** The `attempts` the job had when claimed: an outcome applies only to that attempt. */
  attempt: number;
  /** The `claim_epoch` it had when claimed (0 if never handed back unstarted). */
  claimEpoch?: number;
  /** When its pipeline was called, for a job whose start was never marked: its `started_at`. */
  startedAt?: string | null;
  response: ResponseIX;
  /**
   * Must agree with the response: `done` iff `response.error` is null, `cancelled` only with
   * CANCELLED_ERROR; a contradiction is refused. `retry`: the run failed retryably, and the job
   * runs again `retryInSeconds` from now unless this was its last attempt (isLastAttempt): then it
   * ends `error`. `cancelled` applies only to a job a client asked to cancel.
   */
  status: 'done' | 'error' | 'retry' | 'cancelled';
  /** With `retry`: how long the job waits before it may be claimed again, if it may. */
  retryInSeconds?: number;
  /**
   * `response` as storedResponseJson writes it, when the caller has written it already (and so
   * knows it can be).
   */
  responseJson?: string;
  /**
   * false: its claim took no `max_running` slot for it (Claimed.limited), so none is looked for;
   * absent: any slot it holds is released.
   */
  limited?: boolean;
  /** Its claim's lease (Claimed.leaseId): needed for a job whose start was never marked. */
  leaseId?: string;
}

/**
 * A response as `ix_jobs.response` stores it: its `error` and `result`, without the `ix_id` the
 * row holds already (migrations/0015_stored_responses.ts). Written around its parts: JSON.stringify
 * pays ~50 ns a property and ~100 a call, and the whole response took 383 ns against 259
 * (docs/design.md, "Costs measured on the hot path"). A result JSON cannot hold at all (a
 * function) is null, as it would be in an array; one it cannot write (a BigInt) throws.
 */
export function storedResponseJson({ error, result }: ResponseIX): string {
  const errorJson = error === null ? 'null' : JSON.stringify(error);
  return `{"error":${errorJson},"result":${JSON.stringify(result) ?? 'null'}}`;
}

/** How an outcome is told apart from another attempt's outcome of the same job. */
export const outcomeKey = (jobId: string, attempt: number): string => `${jobId}/${attempt}`;

// An outcome belongs to the claim that ran it: the job is still held at the same attempt and
// claim epoch, either `running` or claimed but never marked started, still `pending` (a worker
// runs fresh jobs without waiting for that mark; see jobStartMany). Every way back to the queue
// moves the attempt or the epoch on, so a pending job at the claim's attempt and epoch is still
// that claim's (the lease's own rule: leases.ts), provided it was claimed at all: a pending
// outcome names its claim's lease, which must still exist (a primary-key probe, where reading the
// lease's entries would detoast its arrays for every job). The job rows are looked up by the
// outcomes' ids (`= ANY`), so no plan can read ix_jobs whole: a worker plans this once per
// connection (generic plans), and one made while ix_jobs held a few hundred rows hashed the whole
// table for every batch, 120–165 ms a statement beside 100,000 jobs (auto_explain).
// A retry is a way back: `attempts + 1` (the run is charged), the job `pending` again with the
// error in `last_error` (only a terminal job has a `response`: migrations/0001_jobs.ts), the run
// moved into `earlier_runs` (migrations/0009_attempt_history.ts), its progress cleared, and a queue row that is ready
// `retry_in` seconds from now. A `retry` of the job's last attempt ($3: the server's budget)
// ends it `error` instead. A job never marked started gets the run's start and its worker ($2:
// only the claimer can record an outcome) from the outcome.
const RETRYING = `(o.status = 'retry' AND NOT coalesce(${isLastAttempt('j', '$3::integer')}, false))`;
const RUN_STARTED_AT = 'coalesce(j.started_at, least(o.started_at, now()), now())';
const RUN_WORKER_ID = 'coalesce(j.worker_id, $2::uuid)';

// $1 holds the outcomes as one array a column, in the order of the batch (outcomeColumns; read by
// batchRows), as the submit's insert sends its batch: over one object an outcome, an outcome's JSON
// was ~240 bytes instead of ~135, and completions of 750 cost PostgreSQL 15–16 µs a job instead
// of 12–13. A column whose values are all null is left out.
const COMPLETE_SQL = `
  WITH outcome AS (
    SELECT job_id::uuid, attempt::integer, claim_epoch::integer, started_at::timestamptz, status, response,
      retry_in::double precision, limited::boolean, lease_id::bigint, position
    FROM ${batchRows(
      '$1',
      'o',
      [
        'job_id',
        'attempt',
        'claim_epoch',
        'started_at',
        'status',
        'response',
        'retry_in',
        'limited',
        'lease_id',
      ],
      { jsonb: ['response'], position: 'position' },
    )}
  ), finished AS (
    UPDATE ix_jobs j SET
      status = CASE WHEN ${RETRYING} THEN 'pending' WHEN o.status = 'retry' THEN 'error' ELSE o.status END,
      response = CASE WHEN ${RETRYING} THEN NULL ELSE o.response END,
      finished_at = CASE WHEN ${RETRYING} THEN NULL ELSE now() END,
      started_at = CASE WHEN ${RETRYING} THEN NULL ELSE ${RUN_STARTED_AT} END,
      worker_id = CASE WHEN ${RETRYING} THEN NULL ELSE ${RUN_WORKER_ID} END,
      attempts = j.attempts + CASE WHEN ${RETRYING} THEN 1 ELSE 0 END,
      run_after = CASE WHEN ${RETRYING} THEN now() + make_interval(secs => o.retry_in) END,
      last_error = CASE WHEN ${RETRYING} THEN o.response ->> 'error' ELSE j.last_error END,
      progress = CASE WHEN ${RETRYING} THEN NULL ELSE j.progress END,
      earlier_runs = CASE WHEN ${RETRYING} THEN ${appendRun('j.earlier_runs', {
        attempt: 'j.attempts + 1',
        workerId: RUN_WORKER_ID,
        startedAt: RUN_STARTED_AT,
        outcome: "'retry'",
        error: "o.response ->> 'error'",
        retryAt: 'now() + make_interval(secs => o.retry_in)',
      })} ELSE j.earlier_runs END
    FROM outcome o
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM outcome)) AND j.job_id = o.job_id
      AND j.attempts = o.attempt AND j.claim_epoch = o.claim_epoch
      AND (o.status <> 'cancelled' OR j.cancel_requested_at IS NOT NULL)
      AND (j.status = 'running'
        OR (j.status = 'pending' AND EXISTS (SELECT 1 FROM ix_job_leases l WHERE l.lease_id = o.lease_id)))
    RETURNING j.job_id, j.client_id, j.priority, o.limited, o.position, j.callback_url, j.status, j.run_after,
      pg_column_size(j.input) AS input_bytes
  ), freed AS (
    -- Only a limited client's job holds a slot: the others' outcomes probe nothing here. Index
    -- lookups of exactly those jobs: a plan made on an empty table joined by scanning every slot
    -- for each outcome.
    DELETE FROM ix_job_slots WHERE job_id = ANY (ARRAY (SELECT job_id FROM finished WHERE limited IS NOT FALSE))
  ), ended_leases AS (
    DELETE FROM ix_job_leases WHERE lease_id = ANY ($4::bigint[])
  ), requeued AS (
    INSERT INTO ix_job_queue (job_id, client_id, priority, input_bytes, ready_at)
    SELECT job_id, client_id, priority, input_bytes, run_after FROM finished WHERE status = 'pending' ORDER BY job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id)
    SELECT job_id FROM finished WHERE status <> 'pending' AND callback_url IS NOT NULL
  )
  SELECT string_agg(coalesce(left(f.status, 1), '-'), '' ORDER BY o.position) AS statuses
  FROM outcome o LEFT JOIN finished f ON f.position = o.position`;

/**
 * COMPLETE_SQL answers with one letter an outcome, in the batch's order: the status it left its
 * job in, by initial, or '-' where it did not apply. A row an outcome (its job id, attempt and
 * status) cost the worker ~1.5 µs and ~400 bytes of garbage a job to read, for an answer that is
 * nearly always "as asked" (bench/RESULTS.md, "The completion's answer in one row, and leaner claims").
 */
const STATUS_BY_INITIAL: Readonly<Record<string, JobStatus>> = {
  d: 'done',
  e: 'error',
  c: 'cancelled',
  p: 'pending',
};

export interface CompleteOptions {
  /** The claimer's id, recorded as the run's worker when the job's start was never marked. */
  workerId?: string | null;
  /** The server's budget of runs (IX_MAX_ATTEMPTS) for a job without its own; null: none. */
  maxAttempts?: number | null;
  /**
   * Leases (Claimed.leaseId) that hold none of the caller's jobs any more, deleted in the same
   * statement: a lease outlives its last outcome until the next outcomes are written.
   */
  endedLeases?: readonly string[];
}

/**
 * Records outcomes, many in one statement: a job ends `done`, `error` or `cancelled`, or
 * (`retry`) goes back to the queue, charged an attempt, to be claimed again once its backoff has
 * passed. Each applies only while its job is still held by the claim that ran it (same attempt
 * and claim epoch), so terminal states never change and a worker whose job was rescued and
 * claimed again cannot overwrite the newer attempt. Returns the status each outcome left its job
 * in (`pending` for a retry), by `outcomeKey`, for the outcomes that applied. A job with a
 * callback URL is queued for delivery in the same statement, so the outcome and the duty to
 * deliver it are durable together. One outcome PostgreSQL cannot store fails the whole
 * statement: callers record a failed batch's outcomes one by one to find it.
 */
export async function jobCompleteMany(
  db: Db,
  outcomes: readonly Outcome[],
  options: CompleteOptions = {},
): Promise<Map<string, JobStatus>> {
  const endedLeases = options.endedLeases ?? [];
  if (outcomes.length === 0 && endedLeases.length === 0) return new Map();
  for (const o of outcomes) {
    if (o.status === 'retry' && !(o.response.error !== null && (o.retryInSeconds ?? -1) >= 0)) {
      throw new Error(`job ${o.jobId}: a retry needs an error and a retryInSeconds ≥ 0`);
    }
    if (
      (o.status === 'done') !== (o.response.error === null) ||
      (o.status === 'cancelled' && o.response.error !== CANCELLED_ERROR)
    ) {
      throw new Error(
        `job ${o.jobId}: status ${o.status} contradicts response.error ${JSON.stringify(o.response.error)}`,
      );
    }
  }
  const { rows } = await db.query<{ statuses: string | null }>(
    prepared('ix_job_complete_many', COMPLETE_SQL, [
      outcomeColumns(outcomes),
      options.workerId ?? null,
      options.maxAttempts ?? null,
      endedLeases,
    ]),
  );
  const statuses = rows[0]?.statuses ?? '';
  if (statuses.length !== outcomes.length)
    throw new Error(`jobCompleteMany: ${statuses.length} statuses for ${outcomes.length} outcomes`);
  const applied = new Map<string, JobStatus>();
  for (let i = 0; i < outcomes.length; i++) {
    if (statuses[i] === '-') continue;
    const status = STATUS_BY_INITIAL[statuses[i]!];
    if (status === undefined) throw new Error(`jobCompleteMany: unknown status initial "${statuses[i]}"`);
    applied.set(outcomeKey(outcomes[i]!.jobId, outcomes[i]!.attempt), status);
  }
  return applied;
}

/**
 * `outcomes` as COMPLETE_SQL's $1 takes them: `{"job_id":[…],"attempt":[…],…}`, one array a
 * column, written out by hand. Ids, numbers, statuses and timestamps are plain tokens (a uuid, an
 * integer, a status, an ISO timestamp or a bigint's digits): only a response needs JSON.stringify.
 */
function outcomeColumns(outcomes: readonly Outcome[]): string {
  const jobIds: string[] = [];
  const attempts: number[] = [];
  const claimEpochs: number[] = [];
  const startedAts: string[] = [];
  const statuses: string[] = [];
  const responses: string[] = [];
  const retryIns: string[] = [];
  const limits: string[] = [];
  const leaseIds: string[] = [];
  for (const o of outcomes) {
    jobIds.push(`"${o.jobId}"`);
    attempts.push(o.attempt);
    claimEpochs.push(o.claimEpoch ?? 0);
    startedAts.push(o.startedAt ? `"${o.startedAt}"` : 'null');
    statuses.push(`"${o.status}"`);
    responses.push(o.responseJson ?? storedResponseJson(o.response));
    retryIns.push(o.status === 'retry' ? String(o.retryInSeconds) : 'null');
    limits.push(o.limited === undefined ? 'null' : String(o.limited));
    leaseIds.push(o.leaseId === undefined ? 'null' : `"${o.leaseId}"`);
  }
  // A column of nulls only is left out (batchRows reads it as NULLs).
  const optional = (name: string, values: string[]) =>
    values.some((value) => value !== 'null') ? `,"${name}":[${values.join(',')}]` : '';
  return `{"job_id":[${jobIds.join(',')}],"attempt":[${attempts.join(',')}],"claim_epoch":[${claimEpochs.join(',')}],"status":[${statuses.join(',')}],"response":[${responses.join(',')}]${optional('started_at', startedAts)}${optional('retry_in', retryIns)}${optional('limited', limits)}${optional('lease_id', leaseIds)}}`;
}
