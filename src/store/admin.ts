/**
 * What operators read: job search and the overview's figures (also the metrics' gauges); an
 * operator's retry is in jobs/operator-retry.ts. None of it is on the hot path, and none of it reads more of ix_jobs than
 * an index range: `ix_jobs` has no index on a column that changes (migrations/0001_jobs.ts), so
 * a status is found through the live tables (pending, running) or filtered along a range of
 * submission times (ended jobs). The plans are in docs/design.md, "Operators".
 */
import type { JobStatus } from '../contracts/index.js';
import type { JobSummary, Overview } from '../contracts/operators.js';
import type { Db } from './db.js';
import { jobIdAt } from './ids.js';
import { isoTimestamp, RAW_TIMESTAMPS } from './jobs/hydrate.js';
import { HELD_JOBS } from './jobs/leases.js';

export interface JobSearch {
  status?: JobStatus | null;
  clientId?: string | null;
  /** The job submitted under this `request_id` (one per client). */
  requestId?: string | null;
  /** Jobs whose `ix_id` starts with this: 1 to 16 lowercase hex characters. */
  ixIdPrefix?: string | null;
  /** Submitted at or after this (epoch ms). */
  fromMs?: number | null;
  /** Submitted before this (epoch ms). */
  toMs?: number | null;
  /** The last job of the previous page: this page starts after it. */
  cursor?: string | null;
  limit: number;
}

export interface JobSearchPage {
  jobs: JobSummary[];
  /** The cursor of the next page; null on the last. */
  next: string | null;
}

export const IX_ID_PREFIX_PATTERN = /^[0-9a-f]{1,16}$/;

interface SummaryRow {
  job_id: string;
  ix_id: string;
  client_id: string;
  request_id: string;
  status: JobStatus;
  attempts: number;
  error: string | null;
  callback_status: JobSummary['callback_status'];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

const SUMMARY_COLUMNS = `j.job_id, j.ix_id, j.client_id, j.request_id, j.status, j.attempts,
  coalesce(j.response ->> 'error', j.last_error) AS error, j.callback_status, j.created_at, j.started_at,
  j.finished_at`;

// The distinct clients, one probe of the unique (client_id, request_id) index each (a loose index
// scan): a request id without its client is looked up under each of them.
const EVERY_CLIENT = `ARRAY (
  WITH RECURSIVE clients AS (
    (SELECT client_id FROM ix_jobs ORDER BY client_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.client_id FROM ix_jobs j WHERE j.client_id > c.client_id ORDER BY j.client_id LIMIT 1)
    FROM clients c WHERE c.client_id IS NOT NULL
  ) SELECT client_id FROM clients WHERE client_id IS NOT NULL)`;

/**
 * Jobs matching every filter given, newest first (by job id, a UUIDv7: submission order), a page
 * at a time. Each filter is an index range of ix_jobs or a small live table; the status of an
 * ended job is the one filter applied row by row, along whichever range the others chose.
 */
export async function jobSearch(db: Db, search: JobSearch): Promise<JobSearchPage> {
  const { rows } = await db.query<SummaryRow>({ ...jobSearchQuery(search), types: RAW_TIMESTAMPS });
  const page = rows.slice(0, search.limit).map(summary);
  return { jobs: page, next: rows.length > search.limit ? (page.at(-1)?.job_id ?? null) : null };
}

/** The statement of `jobSearch` (one row more than a page: whether another follows). */
export function jobSearchQuery(search: JobSearch): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown): string => {
    values.push(value);
    return `$${values.length}`;
  };
  const where: string[] = [];
  const { status } = search;
  // Pending and running jobs are the small live tables' (their rows live while the job does).
  if (status === 'pending')
    where.push(`j.job_id IN (SELECT job_id FROM ix_job_queue UNION ALL SELECT job_id FROM ${HELD_JOBS} h)`);
  if (status === 'running') where.push(`j.job_id IN (SELECT job_id FROM ${HELD_JOBS} h)`);
  if (status) where.push(`j.status = ${param(status)}`);
  // A client: the primary key walked back, keeping its rows (a client with many jobs fills a page
  // at once), or its range of the correlation index, sorted (a client with few): the planner
  // weighs the two by the client's share of the table.
  if (search.clientId) where.push(`j.client_id = ${param(search.clientId)}`);
  if (search.requestId) {
    if (!search.clientId) where.push(`j.client_id = ANY (${EVERY_CLIENT})`);
    where.push(`j.request_id = ${param(search.requestId)}`);
  }
  if (search.ixIdPrefix) {
    const prefix = search.ixIdPrefix;
    if (!IX_ID_PREFIX_PATTERN.test(prefix))
      throw new RangeError(`jobSearch: an ix_id prefix is 1–16 lowercase hex characters, got "${prefix}"`);
    // Hex digits sort before "g" in every collation: a range of the unique index on ix_id.
    where.push(`j.ix_id >= ${param(prefix)} AND j.ix_id < ${param(`${prefix}g`)}`);
  }
  if (search.fromMs != null) where.push(`j.job_id >= ${param(jobIdAt(search.fromMs))}::uuid`);
  if (search.toMs != null) where.push(`j.job_id < ${param(jobIdAt(search.toMs))}::uuid`);
  if (search.cursor) where.push(`j.job_id < ${param(search.cursor)}::uuid`);
  const text = `SELECT ${SUMMARY_COLUMNS} FROM ix_jobs j
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY j.job_id DESC LIMIT ${param(search.limit + 1)}`;
  return { text, values };
}

function summary(row: SummaryRow): JobSummary {
  return {
    ...row,
    created_at: isoTimestamp(row.created_at),
    started_at: row.started_at === null ? null : isoTimestamp(row.started_at),
    finished_at: row.finished_at === null ? null : isoTimestamp(row.finished_at),
  };
}

/** The live figures: the queue, the workers, the callbacks. Small tables and index probes only. */
export interface LiveCounts {
  pending: number;
  running: number;
  /** Seconds the job that became ready first has waited; null when none waits. */
  oldestPendingSeconds: number | null;
  liveWorkers: number;
  callbacksDue: number;
  callbacksFailing: number;
}

// Each a count over a table that holds only live rows (migrations/0001_jobs.ts); the oldest ready
// job is read in the same pass over the queue as its count.
const LIVE_SQL = `
  SELECT
    (SELECT count(*) FROM ix_job_queue)::int AS queued,
    (SELECT count(*) FROM ${HELD_JOBS} h)::int AS claimed,
    (SELECT count(*) FROM ${HELD_JOBS} h WHERE h.status = 'running')::int AS running,
    (SELECT extract(epoch FROM now() - min(ready_at)) FROM ix_job_queue WHERE ready_at <= now())::float8
      AS oldest_pending_seconds,
    (SELECT count(*) FROM ix_workers WHERE heartbeat_at > now() - make_interval(secs => $1))::int AS live_workers,
    (SELECT count(*) FROM ix_callback_queue WHERE next_attempt_at <= now())::int AS callbacks_due,
    (SELECT count(*) FROM ix_callback_queue WHERE attempt > 0)::int AS callbacks_failing`;

/** The live figures; a worker counts as live while its heartbeat is younger than `heartbeatTimeoutSeconds`. */
export async function liveCounts(db: Db, heartbeatTimeoutSeconds: number): Promise<LiveCounts> {
  const { rows } = await db.query<{
    queued: number;
    claimed: number;
    running: number;
    oldest_pending_seconds: number | null;
    live_workers: number;
    callbacks_due: number;
    callbacks_failing: number;
  }>(LIVE_SQL, [heartbeatTimeoutSeconds]);
  const row = rows[0]!;
  return {
    pending: row.queued + row.claimed - row.running,
    running: row.running,
    oldestPendingSeconds: row.oldest_pending_seconds,
    liveWorkers: row.live_workers,
    callbacksDue: row.callbacks_due,
    callbacksFailing: row.callbacks_failing,
  };
}

// The jobs submitted in the last hour, a range of the primary key read once (MATERIALIZED): how
// they ended, by minute, and how long each first run waited to start (from submission, or from
// the time it was scheduled for). Its cost grows with the last hour's jobs, not with the table.
const LAST_HOUR_SQL = `
  WITH recent AS MATERIALIZED (
    SELECT client_id, status, finished_at,
      CASE WHEN earlier_runs IS NULL AND started_at IS NOT NULL
        THEN greatest(0, extract(epoch FROM started_at - greatest(created_at, coalesce(run_after, created_at))) * 1000)
      END AS wait_ms
    FROM ix_jobs WHERE job_id >= $1::uuid
  ), totals AS (
    SELECT count(*)::int AS submitted,
      count(*) FILTER (WHERE status = 'done')::int AS done,
      count(*) FILTER (WHERE status = 'error')::int AS error,
      count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms) AS wait_p50_ms,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) AS wait_p95_ms
    FROM recent
  ), minutes AS (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'minute', to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'done', done, 'error', error, 'cancelled', cancelled) ORDER BY minute), '[]'::jsonb) AS by_minute
    FROM (
      SELECT date_trunc('minute', finished_at) AS minute,
        count(*) FILTER (WHERE status = 'done')::int AS done,
        count(*) FILTER (WHERE status = 'error')::int AS error,
        count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
      FROM recent WHERE finished_at IS NOT NULL GROUP BY 1
    ) m
  ), live_ids AS MATERIALIZED (
    -- Materialized, so the join below is not planned in parallel: starting the workers took
    -- 30 ms of a 110 ms read with a million jobs, for a join of 1,050 live rows.
    SELECT job_id FROM ix_job_queue UNION ALL SELECT job_id FROM ${HELD_JOBS} h
  ), live AS (
    SELECT j.client_id, count(*) FILTER (WHERE j.status = 'pending')::int AS pending,
      count(*) FILTER (WHERE j.status = 'running')::int AS running
    FROM live_ids x JOIN ix_jobs j ON j.job_id = x.job_id GROUP BY j.client_id
  ), submitters AS (
    SELECT client_id, count(*)::int AS submitted, count(*) FILTER (WHERE status = 'error')::int AS error
    FROM recent GROUP BY client_id
  ), clients AS (
    SELECT coalesce(jsonb_agg(c ORDER BY c.pending DESC, c.submitted_last_hour DESC, c.client_id), '[]'::jsonb)
      AS clients
    FROM (
      SELECT coalesce(l.client_id, s.client_id) AS client_id, coalesce(l.pending, 0) AS pending,
        coalesce(l.running, 0) AS running, coalesce(s.submitted, 0) AS submitted_last_hour,
        coalesce(s.error, 0) AS error_last_hour
      FROM live l FULL JOIN submitters s ON s.client_id = l.client_id
      ORDER BY 2 DESC, 4 DESC, 1 LIMIT 50
    ) c
  )
  SELECT totals.*, minutes.by_minute, clients.clients,
    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS as_of
  FROM totals, minutes, clients`;

const WORKERS_SQL = `
  SELECT w.worker_id, w.hostname, w.pid,
    to_char(w.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS started_at,
    round(extract(epoch FROM now() - w.heartbeat_at)::numeric, 1)::float8 AS heartbeat_age_seconds,
    (SELECT count(*)::int FROM ${HELD_JOBS} h WHERE h.worker_id = w.worker_id) AS held,
    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS now
  FROM ix_workers w ORDER BY w.started_at`;

/** The overview's part that reads the last hour's jobs: its cost grows with them. */
export type RecentFigures = Pick<Overview, 'last_hour' | 'clients'> & { as_of: string };

/** The jobs submitted in the hour before `nowMs`, and the clients with the most pending or submitted. */
export async function recentFigures(db: Db, nowMs: number = Date.now()): Promise<RecentFigures> {
  const { rows } = await db.query<{
    submitted: number;
    done: number;
    error: number;
    cancelled: number;
    wait_p50_ms: number | null;
    wait_p95_ms: number | null;
    by_minute: Overview['last_hour']['by_minute'];
    clients: Overview['clients'];
    as_of: string;
  }>(LAST_HOUR_SQL, [jobIdAt(nowMs - 3_600_000)]);
  const row = rows[0]!;
  const ended = row.done + row.error;
  const rounded = (ms: number | null) => (ms === null ? null : Math.round(ms * 10) / 10);
  return {
    as_of: row.as_of,
    last_hour: {
      submitted: row.submitted,
      done: row.done,
      error: row.error,
      cancelled: row.cancelled,
      failure_rate: ended === 0 ? null : row.error / ended,
      queue_wait_p50_ms: rounded(row.wait_p50_ms),
      queue_wait_p95_ms: rounded(row.wait_p95_ms),
      by_minute: row.by_minute,
    },
    clients: row.clients,
  };
}

/**
 * The overview: the live figures and the workers read now (small tables), the last hour's as
 * `recent` has them (read by `recentFigures`, which the caller may have cached).
 */
export async function overviewRead(
  db: Db,
  heartbeatTimeoutSeconds: number,
  recent: RecentFigures,
): Promise<Overview> {
  const live = await liveCounts(db, heartbeatTimeoutSeconds);
  const { rows: workers } = await db.query<Overview['workers'][number] & { now: string }>(WORKERS_SQL);
  return {
    generated_at: workers[0]?.now ?? new Date().toISOString(),
    jobs: { pending: live.pending, running: live.running, oldest_pending_seconds: live.oldestPendingSeconds },
    last_hour: recent.last_hour,
    last_hour_as_of: recent.as_of,
    workers: workers.map(({ now: _now, ...worker }) => worker),
    callbacks: { due: live.callbacksDue, failing: live.callbacksFailing },
    clients: recent.clients,
  };
}
