/**
 * The worker registry, ix_workers: one row per live worker, its heartbeat renewed on an interval,
 * not per job. A claim stays its worker's while the heartbeat is fresh (jobs/sweep.ts).
 */
import { hostname } from 'node:os';
import type { Db } from './db.js';
import { heldJob, leaseEntries } from './jobs/leases.js';

// The cancelled jobs: those of this worker's leases (a small table of live claims only) that a
// client asked to cancel, for a worker whose cancel notification was lost. The count: how many
// workers share the queue (this one, registering or not, and the others beating within $4
// seconds; null: every registered one), which spaces each one's claims under a trickle.
const HEARTBEAT_SQL = `
  WITH beat AS (
    INSERT INTO ix_workers (worker_id, hostname, pid) VALUES ($1, $2, $3)
    ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
  )
  SELECT ARRAY (
      SELECT j.job_id FROM ix_job_leases l
      CROSS JOIN LATERAL ${leaseEntries('l')}
      CROSS JOIN LATERAL ${heldJob('j')}
      WHERE l.worker_id = $1 AND j.status = 'running' AND j.cancel_requested_at IS NOT NULL
    )::text[] AS cancelled,
    1 + (SELECT count(*) FROM ix_workers w WHERE w.worker_id <> $1
      AND ($4::integer IS NULL OR w.heartbeat_at > now() - make_interval(secs => $4::integer)))::integer AS live_workers`;

export interface Beat {
  /** Ids of this worker's running jobs that a client asked to cancel. */
  cancelled: string[];
  /** The workers sharing the queue, this one included. */
  liveWorkers: number;
}

/**
 * Registers the worker or renews its heartbeat: its leases stay its own while this is fresh.
 * `liveWithinSeconds`: how recent another worker's beat must be for it to count as live (null:
 * every registered worker counts).
 */
export async function workerHeartbeat(
  db: Db,
  workerId: string,
  liveWithinSeconds: number | null = null,
): Promise<Beat> {
  const { rows } = await db.query<{ cancelled: string[]; live_workers: number }>(HEARTBEAT_SQL, [
    workerId,
    hostname(),
    process.pid,
    liveWithinSeconds,
  ]);
  const row = rows[0]!;
  return { cancelled: row.cancelled, liveWorkers: row.live_workers };
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
