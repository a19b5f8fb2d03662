/**
 * Taking jobs to run: a claim leases pending jobs to a worker, fairly between clients, and starts
 * the first of them at once; a start (start.ts) marks a claimed job `running` later. Claimed is
 * not started (migrations/0004_claims.ts): a worker that dies is charged an attempt only for the
 * jobs it had started.
 */
import { IX_ID_PATTERN, type Job, type JsonValue } from '../../contracts/index.js';
import { Pause } from '../../time.js';
import type { Db } from '../db.js';
import { CLAIMED_ROWS, priorities, QUEUED_CLIENTS, readyJobs, TAKE_GRANTED } from './claim-steps.js';
import { CorruptJobError, isoTimestamp, prepared } from './hydrate.js';

// The claim is fair between clients (docs/design.md, "Fair claiming"), in one statement:
// - `queued_clients`: the clients with queued jobs, one probe each of the queue's index on
//   (client_id, priority DESC, ready_at, seq), skipping from one client to the next: a client's
//   backlog is never read to find the next client.
// - `clients`: each one's weight, `max_running` (its own, else $5) with the slots its claimed jobs
//   hold, and its pass (stride scheduling): jobs ÷ weight it was served while others waited too.
//   A pass is clamped to [v, v + the longest stride] where v is the lowest pass among them and a
//   stride is one job ÷ weight: clients served in turn stay within one stride of one another, and
//   a client coming back after a pause has banked no credit and owes at most one job. v counts
//   every client with queued jobs, ready or not: one whose jobs all wait for later holds v down
//   until they run, and the others meanwhile take turns claim by claim without the memory of
//   earlier ones (knowing readiness would cost one more probe per client).
// - `shares`: how many of the $1 jobs each client gets: the $1 lowest of pass + n ÷ weight over
//   every client's n = 1, 2, …; ties to the client served longest ago (a new one first).
// - `first_round`: each client's share of its ready jobs (readyJobs). A client with fewer ready
//   jobs than its share leaves part of the claim unfilled: `second_round` shares that part, in the
//   same order, between the clients that had their whole share, so a batch is full whenever
//   enough jobs are ready.
// - `slotted`: a job of a client with `max_running` takes a free slot (ix_job_slots); a slot that a
//   concurrent claim took first makes the insert do nothing (the unique key on (client_id, slot)),
//   and the job stays queued: no more than `max_running` of its jobs are ever claimed at once.
// - `turns`: while more than one client has queued jobs, the passes of the clients served move on
//   (from the latest committed pass: concurrent claims add up), and a client seen for the first
//   time gets one (v), so that it keeps its place from then on instead of being placed at v again
//   at every claim. A single client's claim writes nothing more than before.
// Waits, and why they cannot deadlock: queue rows are skipped, never waited for; a slot a
// concurrent claim inserted is waited for until it commits, and passes are upserted after all
// slots; both in client (and slot) order, the same in every claim. A lease is a new row: no wait.
// `= ANY(ARRAY(…))` makes every step index lookups of exactly the picked rows: written as a join,
// the planner hashed the whole queue and sequentially scanned ix_jobs (docs/design.md, "Costs
// measured on the hot path"). Never as a filter, though: `x = ANY(array)` scans the array for each
// row, and a claim of 1,000 then compares a million uuids (`taken` is a hash join instead).
export const CLAIM_SQL = `
  WITH RECURSIVE ${QUEUED_CLIENTS}, known AS (
    SELECT c.client_id, c.priority AS top_priority, coalesce(k.weight, 1)::float8 AS weight, t.pass AS stored_pass, t.served_at,
      coalesce(k.max_running, $5::integer) AS max_running,
      CASE WHEN coalesce(k.max_running, $5::integer) IS NOT NULL THEN (
        SELECT count(*)::integer FROM ix_job_slots l WHERE l.client_id = c.client_id) END AS used
    FROM queued_clients c
    LEFT JOIN ix_clients k ON k.client_id = c.client_id
    LEFT JOIN ix_client_turns t ON t.client_id = c.client_id
    WHERE NOT coalesce(k.disabled, false)
  ), clients AS (
    SELECT client_id, top_priority, weight, stored_pass, served_at, max_running, used,
      greatest(0, least($1::integer, coalesce(max_running - used, $1::integer))) AS free,
      least(greatest(coalesce(stored_pass, v), v), v + stride) AS pass,
      count(*) OVER () AS competing
    FROM known, (SELECT coalesce(min(stored_pass), 0) AS v, max(1 / weight) AS stride FROM known) lowest
  ), shares AS (
    -- A client alone: all its free slots, with no ranking to do.
    SELECT client_id, top_priority, free AS share FROM clients WHERE competing = 1 AND free > 0
    UNION ALL
    SELECT client_id, top_priority, count(*)::integer FROM (
      SELECT c.client_id, c.top_priority FROM clients c, generate_series(1, c.free) n WHERE c.competing > 1
      ORDER BY c.pass + n / c.weight, c.served_at NULLS FIRST, c.client_id LIMIT $1
    ) ranked GROUP BY client_id, top_priority
  ), first_round AS (
    SELECT q.* FROM shares s CROSS JOIN LATERAL (${readyJobs('s.client_id', 's.top_priority', 's.share')}) q
  ), missing AS (
    SELECT $1::integer - count(*)::integer AS jobs FROM first_round
  ), filled AS (
    SELECT s.client_id, s.share FROM shares s
    WHERE s.share = (SELECT count(*) FROM first_round f WHERE f.client_id = s.client_id)
  ), extra_shares AS (
    SELECT client_id, top_priority, count(*)::integer AS extra FROM (
      SELECT f.client_id, c.top_priority FROM filled f JOIN clients c ON c.client_id = f.client_id, missing m,
        generate_series(f.share + 1, least(c.free, f.share + m.jobs)) n
      ORDER BY c.pass + n / c.weight, c.served_at NULLS FIRST, c.client_id LIMIT (SELECT jobs FROM missing)
    ) ranked GROUP BY client_id, top_priority
  ), second_round AS (
    SELECT q.* FROM extra_shares e CROSS JOIN LATERAL (${readyJobs(
      'e.client_id',
      'e.top_priority',
      'e.extra',
      'AND seq <> ALL (ARRAY (SELECT seq FROM first_round f WHERE f.client_id = e.client_id))',
    )}) q
  ), candidates AS (
    SELECT ctid, seq, ready_at, job_id, input_bytes, client_id,
      row_number() OVER (PARTITION BY client_id ORDER BY priority DESC, ready_at, seq) AS n
    FROM (SELECT * FROM first_round UNION ALL SELECT * FROM second_round) q
  ), chosen AS (
    SELECT ctid, seq, ready_at, job_id, input_bytes, client_id, n, limited,
      row_number() OVER (ORDER BY rank, served_at NULLS FIRST, client_id, n) AS position
    FROM (
      SELECT k.*, c.pass + k.n / c.weight AS rank, c.served_at, c.max_running IS NOT NULL AS limited,
        sum(k.input_bytes) OVER (ORDER BY c.pass + k.n / c.weight, c.served_at NULLS FIRST, k.client_id, k.n)
          - k.input_bytes AS bytes_before
      FROM candidates k JOIN clients c ON c.client_id = k.client_id
    ) r
    WHERE $4::bigint IS NULL OR bytes_before < $4::bigint
  ), slots AS (
    SELECT c.client_id, s.slot, row_number() OVER (PARTITION BY c.client_id ORDER BY s.slot) AS n
    FROM clients c CROSS JOIN LATERAL generate_series(1, least(c.max_running, c.used + c.free)) s(slot)
    WHERE c.max_running IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ix_job_slots l WHERE l.client_id = c.client_id AND l.slot = s.slot)
  ), slotted AS (
    INSERT INTO ix_job_slots (job_id, client_id, slot)
    SELECT ch.job_id, ch.client_id, s.slot FROM chosen ch
    JOIN slots s ON s.client_id = ch.client_id AND s.n = ch.n
    WHERE ch.limited
    ORDER BY ch.client_id, s.slot
    ON CONFLICT DO NOTHING
    RETURNING job_id
  ), granted AS (
    SELECT ch.* FROM chosen ch WHERE NOT ch.limited OR ch.job_id IN (SELECT job_id FROM slotted)
  ), ${TAKE_GRANTED}, served AS (
    SELECT client_id, count(*) AS taken FROM taken GROUP BY client_id
  ), turns AS (
    SELECT c.client_id, c.pass, c.stored_pass, coalesce(s.taken, 0) / c.weight AS delta, s.taken IS NOT NULL AS served
    FROM clients c LEFT JOIN served s ON s.client_id = c.client_id
    WHERE c.competing > 1 AND (s.taken IS NOT NULL OR c.stored_pass IS NULL)
  ), turned AS (
    INSERT INTO ix_client_turns AS t (client_id, pass, served_at)
    SELECT client_id, pass + delta, CASE WHEN served THEN now() END FROM turns ORDER BY client_id
    ON CONFLICT (client_id) DO UPDATE SET
      pass = greatest(t.pass + (SELECT n.delta FROM turns n WHERE n.client_id = excluded.client_id), excluded.pass),
      served_at = coalesce(excluded.served_at, t.served_at)
  )
  ${CLAIMED_ROWS}`;

// The claim of a queue that holds one client's jobs only, without the fair claim's shares, rounds,
// ranking, slots and turns: what the fair claim does in that case, a third cheaper in batches and
// ~45 % cheaper for one job (bench/RESULTS.md, "What the fair claim costs a single client"). `lone` checks, in the statement's own snapshot, that the queue holds no other client's
// jobs (two probes of the queue's index: its first client, and any after it), and that this client
// may be claimed from without turns or slots: not disabled, no `max_running` (its own or $5). An
// empty queue is lone too: there is nothing to share. Otherwise the statement takes nothing and
// says so (`alone` false on its one row), and the caller makes the fair claim. With one client,
// the fair claim's order is the client's own (priority, then ready_at, seq), its share all $1, its
// byte budget counted in that order, and it writes no turn.
export const ONE_CLIENT_CLAIM_SQL = `
  WITH first AS (
    SELECT client_id, priority FROM ix_job_queue ORDER BY client_id, priority DESC LIMIT 1
  ), lone AS (
    SELECT f.client_id, f.priority AS top_priority FROM first f
    LEFT JOIN ix_clients k ON k.client_id = f.client_id
    WHERE NOT EXISTS (SELECT 1 FROM ix_job_queue q WHERE q.client_id > f.client_id)
      AND NOT coalesce(k.disabled, false) AND coalesce(k.max_running, $5::integer) IS NULL
  ), alone AS (
    SELECT EXISTS (SELECT 1 FROM lone) OR NOT EXISTS (SELECT 1 FROM first) AS alone
  ), ready AS (
    SELECT q.*, row_number() OVER w AS position, sum(q.input_bytes) OVER w - q.input_bytes AS bytes_before
    FROM lone l CROSS JOIN LATERAL (${readyJobs('l.client_id', 'l.top_priority', '$1::integer')}) q
    WINDOW w AS (ORDER BY q.priority DESC, q.ready_at, q.seq)
  ), granted AS (
    SELECT ctid, seq, ready_at, job_id, input_bytes, client_id, false AS limited, position FROM ready
    WHERE $4::bigint IS NULL OR bytes_before < $4::bigint
  ), ${TAKE_GRANTED}
  SELECT a.alone, claimed.* FROM alone a LEFT JOIN (${CLAIMED_ROWS}) claimed ON true ORDER BY claimed.position`;

/**
 * What a claimer needs of a claimed job to run it, record its outcome and count it: the rest of
 * the row is the job's before the claim (pending, no outcome), and reading it cost the worker
 * ~0.6 µs a job to parse (12 more columns, mostly null) and ~1 µs to check and shape
 * (bench/RESULTS.md, "The completion's answer in one row, and leaner claims").
 */
export type ClaimedJob = Pick<
  Job,
  | 'job_id'
  | 'ix_id'
  | 'client_id'
  | 'request_id'
  | 'request'
  | 'attempts'
  | 'priority'
  | 'callback_url'
  | 'created_at'
>;

/** A job as one claim holds it: enough to start it, run it and record or hand back its outcome. */
export interface Claimed {
  job: ClaimedJob;
  /** Whether the claim started it (status `running`), or it waits unstarted, still `pending`. */
  started: boolean;
  /** The job's `claim_epoch` at the claim: starting it applies only while that is unchanged. */
  claimEpoch: number;
  /** How often it was rescued from a worker that died or stalled while running it. */
  rescues: number;
  /** The stored size of its input, counted against the claimer's byte budget. */
  inputBytes: number;
  /** How long it had been ready (its `ready_at` passed) when claimed: its wait in the queue. */
  waitedSeconds: number;
  /** Its client has a `max_running`: the claim holds one of the client's slots until it ends. */
  limited: boolean;
  /**
   * The lease of the claim that took it, shared by every job of that claim: its holder deletes it
   * (jobCompleteMany's `endedLeases`) once none of them is held any more.
   */
  leaseId: string;
}

export interface ClaimOptions {
  limit: number;
  /** Leases the jobs to this worker; null: only the age rule of `jobSweepOrphans` rescues them. */
  workerId: string | null;
  /** How many of the claimed jobs (the first in the fair order) start at once; the rest wait, `pending`. */
  startNow: number;
  /** Stop before the inputs claimed exceed this many stored bytes (one job always fits). */
  maxInputBytes?: number | null;
  /** `max_running` of a client without its own in `ix_clients` (IX_CLIENT_MAX_RUNNING); null: none. */
  defaultMaxRunning?: number | null;
}

/**
 * Claims up to `limit` pending jobs that are due, in one statement, fairly between clients:
 * round robin weighted by each client's weight, the most urgent of a client's jobs first, never
 * more than a client's `max_running` claimed at once, and none of a disabled client. Each job is
 * dispatched to at most one caller (`FOR UPDATE SKIP LOCKED`) and leased to `workerId`, whose
 * heartbeat keeps it. The first `startNow` move to `running` (but a job once rescued from a dead
 * worker, which the claimer runs alone); the rest stay `pending` until `jobStartMany`, so a claimer
 * that dies is charged an attempt only for what it had started.
 */
export async function jobClaimMany(db: Db, options: ClaimOptions): Promise<Claimed[]> {
  const { limit, workerId, startNow } = options;
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`jobClaimMany: limit must be ≥ 1, got ${limit}`);
  const parameters = [
    limit,
    workerId,
    startNow,
    options.maxInputBytes ?? null,
    options.defaultMaxRunning ?? null,
  ];
  if (!fairClaims.active) {
    const { rows } = await db.query<
      { alone: boolean } & (ClaimedRow | { [column in keyof ClaimedRow]: null })
    >(prepared('ix_job_claim_one_client', ONE_CLIENT_CLAIM_SQL, parameters));
    if (rows[0]?.alone) return rows.flatMap((row) => (row.job_id === null ? [] : [claimedOf(row)]));
    fairClaims.start();
  }
  const { rows } = await db.query<ClaimedRow>(prepared('ix_job_claim', CLAIM_SQL, parameters));
  return rows.map(claimedOf);
}

/**
 * Once a claim found several clients' jobs queued (or one with limits), this process's claims go
 * straight to the fair statement for 30 s: a one-client claim that finds it cannot serve is a
 * statement wasted (~350 µs of PostgreSQL's CPU), at most once a pause.
 */
const fairClaims = new Pause(30_000);

interface ClaimedRow {
  job_id: string;
  ix_id: string;
  client_id: string;
  request_id: string;
  created_at: string;
  callback_url: string | null;
  input: JsonValue;
  attempts: number;
  priority: number;
  started: boolean;
  claim_epoch: number;
  rescues: number;
  input_bytes: number;
  waited_seconds: number;
  limited: boolean;
  lease_id: string;
}

function claimedOf(row: ClaimedRow): Claimed {
  // The columns' types and constraints hold the rest; an ix_id is checked on every read.
  if (!IX_ID_PATTERN.test(row.ix_id))
    throw new CorruptJobError(row.job_id, 'ix_id: not 16 lowercase hex characters');
  const { job_id, ix_id, client_id, request_id, input } = row;
  return {
    job: {
      job_id,
      ix_id,
      client_id,
      request_id,
      request: { ix_client_id: client_id, request_id, ix_id, input },
      attempts: row.attempts,
      priority: row.priority,
      callback_url: row.callback_url,
      created_at: isoTimestamp(row.created_at),
    },
    started: row.started,
    claimEpoch: row.claim_epoch,
    rescues: row.rescues,
    inputBytes: row.input_bytes,
    waitedSeconds: row.waited_seconds,
    limited: row.limited,
    leaseId: row.lease_id,
  };
}

// Strictly later than now: a row ready now but locked by another claim is that claim's, and
// waiting for it would be a busy loop. One index probe per client with queued jobs and priority.
const NEXT_READY_SQL = `
  WITH RECURSIVE ${QUEUED_CLIENTS}
  SELECT ceil(extract(epoch FROM min(n.ready_at) - now()) * 1000)::float8 AS ms
  FROM queued_clients c CROSS JOIN ${priorities('c.priority')} p CROSS JOIN LATERAL (
    SELECT ready_at FROM ix_job_queue
    WHERE client_id = c.client_id AND priority = p AND ready_at > now() ORDER BY ready_at LIMIT 1
  ) n`;

/**
 * Milliseconds until the first queued job that is not ready yet (scheduled, or waiting out a
 * retry's backoff) becomes so; null when none waits. An idle worker sleeps no longer than this.
 */
export async function jobNextReadyInMs(db: Db): Promise<number | null> {
  const { rows } = await db.query<{ ms: number | null }>(prepared('ix_job_next_ready', NEXT_READY_SQL, []));
  return rows[0]?.ms ?? null;
}
