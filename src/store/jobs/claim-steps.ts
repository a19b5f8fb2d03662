/**
 * The parts the claim statements share (claim.ts): finding the clients with queued jobs, reading a
 * client's ready jobs, and the steps every claim ends with once it knows which queue rows it takes.
 */
// The clients with queued jobs, each with the highest priority among its queued jobs (ready or
// not), one index probe each: a skip from one client to the next through the queue's (client_id,
// priority DESC, ready_at, seq) index, whose first entry for a client holds that priority. Needs
// WITH RECURSIVE.
export const QUEUED_CLIENTS = `queued_clients AS (
    (SELECT client_id, priority FROM ix_job_queue ORDER BY client_id, priority DESC LIMIT 1)
    UNION ALL
    SELECT q.client_id, q.priority FROM queued_clients c CROSS JOIN LATERAL (
      SELECT client_id, priority FROM ix_job_queue q WHERE q.client_id > c.client_id
      ORDER BY q.client_id, q.priority DESC LIMIT 1
    ) q
  )`;

/**
 * A client's job priorities that can hold queued jobs, most urgent first: its jobs are read one
 * priority at a time, from its highest. Starting from 9 for every client cost 10 index probes a
 * client a claim, most of them into priorities nobody uses (80 of a claim's ~90 probes with 8
 * clients).
 */
export const priorities = (top: string) => `generate_series(${top}::integer, 0, -1)`;

/**
 * Up to `limit` ready jobs of `client`, most urgent first, then in the order they became ready, each
 * locked (FOR UPDATE SKIP LOCKED: concurrent claims take different jobs): a range scan of
 * (client_id, priority, ready_at ≤ now()) per priority, which stops once `limit` are read.
 */
export function readyJobs(client: string, top: string, limit: string, condition = ''): string {
  return `
      SELECT x.* FROM ${priorities(top)} p CROSS JOIN LATERAL (
        SELECT ctid, seq, ready_at, job_id, input_bytes, client_id, priority FROM ix_job_queue
        WHERE client_id = ${client} AND priority = p AND ready_at <= now() ${condition}
        ORDER BY ready_at, seq LIMIT ${limit} FOR UPDATE SKIP LOCKED
      ) x LIMIT ${limit}`;
}

// The steps every claim ends with, once `granted` holds the queue rows it takes (ctid, job_id,
// input_bytes, ready_at, limited, position: the order they are handed out in):
// - `leased`: one lease for the whole claim, listing each job taken with its attempt and claim
//   epoch (migrations/0014_batch_leases.ts); its id comes back with every row.
// - `taken` reads each granted job by its primary key, in a LIMIT 1 subquery the planner cannot
//   flatten into a join: a generic plan is made once per connection, and one made before the
//   tables had statistics joined the picked jobs to ix_jobs by a nested loop that compared every
//   pair (1,019,090 comparisons in a claim of 1,010; 78 of 714 claims in one `bench:worker` run).
//   It reads only what the claimer needs to run the job and record its outcome (ClaimedJob), and
//   ix_jobs as it was before `started` changed it (a statement sees one snapshot): whether a job
//   started comes from `started`.
export const TAKE_GRANTED = `picked AS (
    -- By ctid: the rows are locked by this statement, so none has moved (the queue has no index
    -- on seq; see migrations/0013_clients.ts).
    DELETE FROM ix_job_queue WHERE ctid = ANY (ARRAY (SELECT ctid FROM granted))
  ), taken AS (
    SELECT c.ctid, c.position, c.input_bytes, c.ready_at, c.limited, j.* FROM granted c
    CROSS JOIN LATERAL (
      SELECT j.job_id, j.ix_id, j.client_id, j.request_id, j.created_at, j.callback_url, j.input, j.attempts,
        j.priority, j.claim_epoch, j.rescues FROM ix_jobs j
      WHERE j.job_id = c.job_id AND j.status = 'pending' LIMIT 1
    ) j
  ), leased AS (
    INSERT INTO ix_job_leases (worker_id, job_ids, attempts, claim_epochs)
    SELECT $2, array_agg(job_id), array_agg(attempts), array_agg(claim_epoch) FROM taken HAVING count(*) > 0
    RETURNING lease_id
  ), started AS (
    UPDATE ix_jobs j SET status = 'running', started_at = now(), worker_id = $2
    WHERE j.job_id = ANY (ARRAY (SELECT job_id FROM taken WHERE position <= $3))
      AND j.status = 'pending' AND j.rescues = 0
    RETURNING j.job_id
  )`;

/** A claim's rows: each job taken, and whether the claim started it, in the order it was handed out. */
export const CLAIMED_ROWS = `SELECT c.job_id, c.ix_id, c.client_id, c.request_id, c.created_at, c.callback_url, c.input,
    c.attempts, c.priority, s.job_id IS NOT NULL AS started, c.claim_epoch, c.rescues, c.input_bytes,
    extract(epoch FROM now() - c.ready_at)::float8 AS waited_seconds, c.limited,
    (SELECT lease_id FROM leased)::text AS lease_id, c.position
  FROM taken c
  LEFT JOIN started s ON s.job_id = c.job_id
  ORDER BY c.position`;
