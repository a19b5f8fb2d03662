/** Looking jobs up: by id, and by the client's own key. */
import type { Job } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { hydrate, JOB_COLUMNS, type JobRow, prepared } from './hydrate.js';

const SELECT_BY_ID_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE job_id = $1`;

const SELECT_BY_CORRELATION_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE client_id = $1 AND request_id = $2`;

const SELECT_MANY_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE job_id = ANY ($1::uuid[])`;

export async function jobGet(db: Db, jobId: string): Promise<Job | null> {
  const { rows } = await db.query<JobRow>(prepared('ix_job_get', SELECT_BY_ID_SQL, [jobId]));
  return rows[0] ? hydrate(rows[0]) : null;
}

export async function jobGetByCorrelation(db: Db, clientId: string, requestId: string): Promise<Job | null> {
  const { rows } = await db.query<JobRow>(
    prepared('ix_job_get_by_correlation', SELECT_BY_CORRELATION_SQL, [clientId, requestId]),
  );
  return rows[0] ? hydrate(rows[0]) : null;
}

/** The jobs with these ids that exist, in no particular order: one statement for them all. */
export async function jobGetMany(db: Db, jobIds: readonly string[]): Promise<Job[]> {
  if (jobIds.length === 0) return [];
  const { rows } = await db.query<JobRow>(prepared('ix_job_get_many', SELECT_MANY_SQL, [jobIds]));
  return rows.map(hydrate);
}
