/**
 * What is left of a pruned job (jobs/prune.ts): its tombstone, which keeps the job's
 * `(client_id, request_id)` taken until `key_free_after`, and answers for the job meanwhile.
 */
import { type FinalStatus, type Tombstone, TombstoneSchema } from '../../contracts/index.js';
import type { Db } from '../db.js';
import { isoTimestamp, prepared } from './hydrate.js';

/** The job existed and ended, and its request and response have been pruned; only its tombstone is left. */
export class JobGoneError extends Error {
  readonly jobId: string;

  constructor(readonly tombstone: Tombstone) {
    const { job_id: jobId, status, pruned_at: prunedAt, key_free_after: freeAfter } = tombstone;
    super(
      `job ${jobId} (client "${tombstone.client_id}", request_id "${tombstone.request_id}") ended ${status} and was ` +
        `pruned at ${prunedAt}: its result is gone. ${
          freeAfter === null
            ? 'Its request_id stays taken.'
            : `Its request_id stays taken until ${freeAfter}; submit under a new request_id to run it again.`
        }`,
    );
    this.name = 'JobGoneError';
    this.jobId = jobId;
  }
}

export const TOMBSTONE_COLUMNS = `job_id, ix_id, client_id, request_id, status, finished_at, pruned_at, key_free_after`;

/** TOMBSTONE_COLUMNS of `ix_job_tombstones t`, for statements that join it. */
export const TOMBSTONE_COLUMNS_OF_T = TOMBSTONE_COLUMNS.replace(/(\w+)/g, 't.$1');

export interface TombstoneRow {
  job_id: string;
  ix_id: string;
  client_id: string;
  request_id: string;
  status: FinalStatus;
  finished_at: string | Date;
  pruned_at: string | Date;
  key_free_after: string | Date | null;
}

/** A tombstone as the API shows it; checked against its contract like every job read back. */
export function tombstoneOf(row: TombstoneRow): Tombstone {
  return TombstoneSchema.parse({
    job_id: row.job_id,
    ix_id: row.ix_id,
    client_id: row.client_id,
    request_id: row.request_id,
    status: row.status,
    finished_at: isoTimestamp(row.finished_at),
    pruned_at: isoTimestamp(row.pruned_at),
    key_free_after: row.key_free_after === null ? null : isoTimestamp(row.key_free_after),
  });
}

// Read only where ix_jobs had no row: a miss costs a second probe, a hit on a job none.
const BY_ID_SQL = `SELECT ${TOMBSTONE_COLUMNS} FROM ix_job_tombstones WHERE job_id = $1`;
const BY_CORRELATION_SQL = `SELECT ${TOMBSTONE_COLUMNS} FROM ix_job_tombstones WHERE client_id = $1 AND request_id = $2`;

/** The tombstone of a pruned job, by its id; null when there is none. */
export async function tombstoneGet(db: Db, jobId: string): Promise<Tombstone | null> {
  const { rows } = await db.query<TombstoneRow>(prepared('ix_tombstone_get', BY_ID_SQL, [jobId]));
  return rows[0] ? tombstoneOf(rows[0]) : null;
}

/** The tombstone holding a client's request id; null when there is none. */
export async function tombstoneGetByCorrelation(
  db: Db,
  clientId: string,
  requestId: string,
): Promise<Tombstone | null> {
  const { rows } = await db.query<TombstoneRow>(
    prepared('ix_tombstone_get_by_correlation', BY_CORRELATION_SQL, [clientId, requestId]),
  );
  return rows[0] ? tombstoneOf(rows[0]) : null;
}
