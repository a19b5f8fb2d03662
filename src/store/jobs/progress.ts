/**
 * Progress: what a pipeline reports of its run while it works, stored on the job
 * (migrations/0011_progress.ts) for `GET /jobs/{id}` and the job's event stream.
 */
import type { ProgressReport } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { prepared } from './hydrate.js';
import { isoText } from './runs.js';

export interface ProgressUpdate {
  jobId: string;
  /** The `attempts` and `claim_epoch` the job was claimed at: only that run may report. */
  attempt: number;
  claimEpoch: number;
  report: ProgressReport;
}

// Fenced like an outcome (complete.ts): only the run that holds the job, and only while it is
// marked running, so a run that was rescued or has ended cannot report over a newer one. The job
// rows are read by their ids (`= ANY`), whatever the plan (see complete.ts).
const PROGRESS_SQL = `
  UPDATE ix_jobs j SET progress = jsonb_build_object('percent', u.percent, 'stage', u.stage,
    'message', u.message, 'updated_at', ${isoText('now()')})
  FROM jsonb_to_recordset($1::jsonb)
    AS u(job_id uuid, attempt integer, claim_epoch integer, percent double precision, stage text, message text)
  WHERE j.job_id = ANY ($2::uuid[]) AND j.job_id = u.job_id AND j.attempts = u.attempt
    AND j.claim_epoch = u.claim_epoch AND j.status = 'running'
  RETURNING j.job_id`;

/** Stores each job's latest progress, in one statement; returns the ids it applied to. */
export async function jobProgressMany(db: Db, updates: readonly ProgressUpdate[]): Promise<string[]> {
  if (updates.length === 0) return [];
  const payload = updates.map(({ jobId, attempt, claimEpoch, report }) => ({
    job_id: jobId,
    attempt,
    claim_epoch: claimEpoch,
    percent: report.percent ?? null,
    stage: report.stage ?? null,
    message: report.message ?? null,
  }));
  const { rows } = await db.query<{ job_id: string }>(
    prepared('ix_job_progress_many', PROGRESS_SQL, [JSON.stringify(payload), updates.map((u) => u.jobId)]),
  );
  return rows.map((row) => row.job_id);
}
