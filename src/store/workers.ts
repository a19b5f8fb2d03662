/**
 * The worker registry, ix_workers: one row per live worker, its heartbeat renewed on an interval,
 * not per job. A claim stays its worker's while the heartbeat is fresh (jobs/sweep.ts).
 */
import { hostname } from 'node:os';
import type { Db } from './db.js';
import { heldJob, leaseEntries } from './jobs/leases.js';

// The second half reads the jobs this worker's leases hold (a small table of live claims only):
// those a client asked to cancel, for a worker whose cancel notification was lost.
const HEARTBEAT_SQL = `
  WITH beat AS (
    INSERT INTO ix_workers (worker_id, hostname, pid) VALUES ($1, $2, $3)
    ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
  )
  SELECT j.job_id FROM ix_job_leases l
  CROSS JOIN LATERAL ${leaseEntries('l')}
  CROSS JOIN LATERAL ${heldJob('j')}
  WHERE l.worker_id = $1 AND j.status = 'running' AND j.cancel_requested_at IS NOT NULL`;

/**
 * Registers the worker or renews its heartbeat: its leases stay its own while this is fresh.
 * Returns the ids of its running jobs that a client asked to cancel.
 */
export async function workerHeartbeat(db: Db, workerId: string): Promise<string[]> {
  const { rows } = await db.query<{ job_id: string }>(HEARTBEAT_SQL, [workerId, hostname(), process.pid]);
  return rows.map((row) => row.job_id);
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
