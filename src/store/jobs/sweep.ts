/**
 * Handing jobs back: the sweep rescues the jobs of workers that died or stalled, and a stopping
 * worker releases what it holds. Both through one statement tail, handBack().
 */
import type { Db } from '../db.js';
import { jobNotifyChanged, jobNotifyPending } from '../notify.js';
import { CANCELLED_ERROR } from './cancel.js';
import { heldJob, leaseEntries } from './leases.js';
import { appendRun, isLastAttempt } from './runs.js';

export interface SweepOptions {
  /** The clock, injected so tests need no sleeping; default: the database's now(). */
  now?: Date | null;
  /**
   * A started job running longer than this is rescued whatever its worker says: the worker may
   * heartbeat and still be stuck on it.
   */
  maxRunningSeconds: number;
  /** A claimed job whose worker's heartbeat is older than this, or gone, is rescued; null: rule off. */
  heartbeatTimeoutSeconds?: number | null;
  /**
   * A started job whose rescue charges it its `max_attempts`-th attempt (without one of its own,
   * this one's) ends `error` instead; null: without one of its own, retried forever.
   */
  maxAttempts?: number | null;
}

export interface SweepResult {
  /** Had started: back to `pending` with `attempts + 1`. */
  requeued: string[];
  /** Claimed but never started: back to the queue as they were, `attempts` unchanged. */
  returned: string[];
  /** Ended `error`: abandoned after `maxAttempts` attempts. */
  abandoned: string[];
  /** Ended `cancelled`: running when a client cancelled them, and their worker is gone. */
  cancelled: string[];
}

// How a job held by a worker goes back. A started one (`running`) that the sweep takes from a
// dead or stalled worker (`rescue`) is charged an attempt, or at its budget abandoned, and counts
// a rescue (it may be what killed it). Anything else, an unstarted claim (`pending` with a lease)
// or a job a stopping worker aborts, is handed back as it was: a graceful stop is not the job's
// failure. A running job a client asked to cancel ends `cancelled` instead, whoever hands it
// back: its pipeline was to be aborted anyway. Its claim_epoch moves on, so the stale claim can never start it nor record an
// outcome. A started job's run ends here: it moves into `earlier_runs`, `worker_lost` for a
// rescue (with `lost_error`, why), `interrupted` for a release (migrations/0009_attempt_history.ts).
// Used by the sweep and by a worker's own release; `held` names the job rows, locked (as UPDATE
// targets) before their slot rows and leases, the same order as completion, so one racing another
// waits instead of deadlocking, and the re-checked status, attempts and epoch then skip what the
// other already moved. A release leaves the lease to its worker, which deletes it once it holds
// nothing (jobCompleteMany's `endedLeases`).
const handBack = (after = '') => `
  charged AS (
    SELECT h.*, h.status = 'running' AND h.rescue AND c.cancel_requested_at IS NULL AS charge,
      h.status = 'running' AND c.cancel_requested_at IS NOT NULL AS cancel,
      coalesce(${isLastAttempt('c', 'h.max_attempts')}, false) AS last_attempt
    FROM held h JOIN ix_jobs c ON c.job_id = h.job_id
    WHERE c.job_id = ANY (ARRAY (SELECT job_id FROM held))
  ), moved AS (
    UPDATE ix_jobs j SET
      attempts = j.attempts + CASE WHEN h.charge THEN 1 ELSE 0 END,
      claim_epoch = j.claim_epoch + CASE WHEN h.charge THEN 0 ELSE 1 END,
      rescues = j.rescues + CASE WHEN h.charge THEN 1 ELSE 0 END,
      started_at = NULL,
      progress = CASE WHEN h.cancel OR (h.charge AND h.last_attempt) THEN j.progress END,
      earlier_runs = CASE WHEN h.status = 'running' THEN ${appendRun('j.earlier_runs', {
        attempt: 'j.attempts + 1',
        workerId: 'j.worker_id',
        startedAt: 'j.started_at',
        outcome: "CASE WHEN h.rescue THEN 'worker_lost' ELSE 'interrupted' END",
        error: 'h.lost_error',
        retryAt: 'NULL::timestamptz',
      })} ELSE j.earlier_runs END,
      worker_id = NULL,
      status = CASE WHEN h.cancel THEN 'cancelled' WHEN h.charge AND h.last_attempt THEN 'error' ELSE 'pending' END,
      finished_at = CASE WHEN h.cancel OR (h.charge AND h.last_attempt) THEN now() END,
      response = CASE WHEN h.cancel THEN jsonb_build_object('result', NULL, 'error', '${CANCELLED_ERROR}')
        WHEN h.charge AND h.last_attempt THEN jsonb_build_object(
        'result', NULL,
        'error', format('abandoned after %s attempts: the last one''s worker died or stalled', j.attempts + 1)) END
    FROM charged h
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM charged)) AND j.job_id = h.job_id AND j.status = h.status AND j.attempts = h.attempt AND j.claim_epoch = h.claim_epoch
    RETURNING j.job_id, j.client_id, j.priority, j.status, h.charge, j.callback_url, pg_column_size(j.input) AS input_bytes
  ), freed AS (
    DELETE FROM ix_job_slots WHERE job_id = ANY (ARRAY (SELECT job_id FROM moved))
  ), requeued AS (
    INSERT INTO ix_job_queue (job_id, client_id, priority, input_bytes)
    SELECT job_id, client_id, priority, input_bytes FROM moved WHERE status = 'pending' ORDER BY job_id
  ), callbacks AS (
    INSERT INTO ix_callback_queue (job_id)
    SELECT job_id FROM moved WHERE status IN ('error', 'cancelled') AND callback_url IS NOT NULL
  )
${after}
  SELECT job_id, status, charge FROM moved`;

interface HandedBack {
  job_id: string;
  status: string;
  charge: boolean;
}

function handedBack(rows: readonly HandedBack[]): SweepResult {
  const result: SweepResult = { requeued: [], returned: [], abandoned: [], cancelled: [] };
  for (const row of rows) {
    if (row.status === 'error') result.abandoned.push(row.job_id);
    else if (row.status === 'cancelled') result.cancelled.push(row.job_id);
    else (row.charge ? result.requeued : result.returned).push(row.job_id);
  }
  return result;
}

// The age rule applies to started jobs only: a claim waiting in a live worker's buffer is that
// worker's, however long it waits. `finished_at = now()` in handBack() is the database clock; the
// injected clock only decides who is stale.
// A silent worker's lease goes once nothing it held is left behind: a job that a racing statement
// of that worker moved first (a start, say: handBack() re-checks the status and skips it) keeps
// the lease, for the next sweep to judge again.
const EXPIRED = `, expired AS (
    DELETE FROM ix_job_leases x USING leases l
    WHERE x.lease_id = l.lease_id AND l.silent
      AND NOT EXISTS (
        SELECT 1 FROM judged d WHERE d.lease_id = l.lease_id AND d.job_id NOT IN (SELECT job_id FROM moved))
  )`;
const SWEEP_SQL = `
  WITH params AS (
    SELECT coalesce($1::timestamptz, now()) AS now, $2::integer AS max_running, $3::integer AS heartbeat_timeout,
      $4::integer AS max_attempts
  ), leases AS (
    SELECT l.*, p.heartbeat_timeout IS NOT NULL AND l.worker_id IS NOT NULL
        AND (w.worker_id IS NULL OR w.heartbeat_at < p.now - make_interval(secs => p.heartbeat_timeout)) AS silent
    FROM ix_job_leases l
    LEFT JOIN ix_workers w ON w.worker_id = l.worker_id
    CROSS JOIN params p
  ), judged AS (
    SELECT j.job_id, j.status, j.attempts AS attempt, j.claim_epoch, p.max_attempts, p.max_running, l.lease_id, l.silent,
      j.status = 'running' AND j.started_at < p.now - make_interval(secs => p.max_running) AS overran
    FROM leases l
    CROSS JOIN LATERAL ${leaseEntries('l')}
    CROSS JOIN LATERAL ${heldJob('j')}
    CROSS JOIN params p
  ), held AS (
    SELECT job_id, status, attempt, claim_epoch, max_attempts, true AS rescue,
      CASE WHEN silent THEN 'worker lost: it stopped sending heartbeats'
        ELSE format('worker lost: the run took over %s s, the longest a run may take', max_running) END AS lost_error
    FROM judged WHERE overran OR silent
  ), ${handBack(EXPIRED)}`;

/**
 * Rescues the jobs of workers that are gone (stale heartbeat, or no worker row) and started jobs
 * that have run longer than `maxRunningSeconds`: a started one back to `pending` with
 * `attempts + 1` (at `maxAttempts`, `error` instead), an unstarted claim back to the queue as it
 * was. One statement; safe to run in many workers at once. Workers are woken for what went back.
 */
export async function jobSweepOrphans(db: Db, options: SweepOptions): Promise<SweepResult> {
  const { rows } = await db.query<HandedBack>(SWEEP_SQL, [
    options.now ?? null,
    options.maxRunningSeconds,
    options.heartbeatTimeoutSeconds ?? null,
    options.maxAttempts ?? null,
  ]);
  const result = handedBack(rows);
  if (result.requeued.length + result.returned.length > 0) await jobNotifyPending(db);
  await jobNotifyChanged(db, [...result.requeued, ...result.abandoned, ...result.cancelled]);
  return result;
}

export interface Held {
  jobId: string;
  attempt: number;
  claimEpoch: number;
  /** Whether its pipeline was started (it goes back all the same, charged nothing). */
  started: boolean;
}

const RELEASE_SQL = `
  WITH held AS (
    SELECT job_id, CASE WHEN started THEN 'running' ELSE 'pending' END AS status, attempt, claim_epoch,
      NULL::integer AS max_attempts, false AS rescue, NULL::text AS lost_error
    FROM jsonb_to_recordset($1::jsonb) AS h(job_id uuid, attempt integer, claim_epoch integer, started boolean)
  ), ${handBack()}`;

/**
 * Puts jobs a worker holds back to `pending` at once (graceful shutdown), each as it was, with no
 * attempt charged: a started one (its pipeline is being aborted) as well as an unstarted claim.
 * Returns the ids that went back.
 */
export async function jobReleaseMany(db: Db, held: readonly Held[]): Promise<string[]> {
  if (held.length === 0) return [];
  const payload = held.map((h) => ({
    job_id: h.jobId,
    attempt: h.attempt,
    claim_epoch: h.claimEpoch,
    started: h.started,
  }));
  const { rows } = await db.query<HandedBack>(RELEASE_SQL, [JSON.stringify(payload)]);
  const startedIds = new Set(held.filter((h) => h.started).map((h) => h.jobId));
  if (rows.length > 0) await jobNotifyPending(db);
  // An unstarted claim's hand-back changes nothing a watcher sees: it was and is pending.
  await jobNotifyChanged(
    db,
    rows.filter((row) => row.status !== 'pending' || startedIds.has(row.job_id)).map((row) => row.job_id),
  );
  return rows.map((r) => r.job_id);
}
