/**
 * Retention: `npm run bench:retention`. Prints one JSON line per section on stdout (progress on
 * stderr):
 * - `latency`: claim and completion latency (p50, p99) with no finished job in ix_jobs and with
 *   FINISHED of them (default 1,000,000), in two databases measured in alternation, LATENCY_ROUNDS
 *   rounds of SAMPLES claims each; a claim takes 10 jobs as a worker at concurrency 10 does, a
 *   completion records those 10.
 * - `prune_under_load`: the worker workload (LOAD_N jobs inserted by 10 callers, then run by a
 *   Worker at concurrency 10, prefetch 1000, no-op pipeline) in rounds, alone and while the
 *   pruner (the default settings, IX_PRUNE_* from the environment) removes the FINISHED expired
 *   jobs, in alternation; throughput of each round, the pruner's statements (the longest is the
 *   longest it held rows locked), and every sample (every 20 ms) of a session of this database
 *   waiting on a lock, by who waited.
 * - `bloat`: ROUNDS rounds of fill ROUND_ROWS finished jobs → expire → prune → autovacuum,
 *   then the on-disk size of ix_jobs, ix_job_tombstones and their indexes after each.
 * - `layout`: what partitioning ix_jobs by time would save and cost instead: dropping a
 *   partition of ROUND_ROWS jobs against the batched prune of as many, and the WAL and time of
 *   the key table every submit would then write.
 * Env: PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres), IX_BENCH_DB (bench_retention, recreated),
 *      FINISHED (1000000), LOAD_N (20000), SAMPLES (500), LATENCY_ROUNDS (4), ROUNDS (3), ROUND_ROWS (FINISHED),
 *      SECTIONS (latency,prune_under_load,bloat,layout).
 * WAL is server-wide: run it on a server of its own (bench/RESULTS.md says how).
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import {
  createPool,
  jobClaimMany,
  jobCompleteMany,
  jobInsertMany,
  jobPruneExpired,
  migrateUp,
  type PruneResult,
} from '../src/store/index.js';
import { type Pipeline, retentionPolicy, Worker } from '../src/worker/index.js';
import { FILLER, makePayload, pcts, untilDrained } from './workload.js';

const env = (name: string, fallback: string) => process.env[name] || fallback;
const FINISHED = Number(env('FINISHED', '1000000'));
const LOAD_N = Number(env('LOAD_N', '20000'));
const SAMPLES = Number(env('SAMPLES', '500'));
const LATENCY_ROUNDS = Number(env('LATENCY_ROUNDS', '4'));
const ROUNDS = Number(env('ROUNDS', '3'));
const ROUND_ROWS = Number(env('ROUND_ROWS', String(FINISHED)));
const SECTIONS = env('SECTIONS', 'latency,prune_under_load,bloat,layout').split(',');
const DB = env('IX_BENCH_DB', 'bench_retention');
const server = `postgres://${env('PGUSER', 'postgres')}@${env('PGHOST', '127.0.0.1')}:${env('PGPORT', '5432')}`;
const url = `${server}/${DB}`;
const DAY_MS = 86_400_000;
const CLAIM_BATCH = 10;

const log = (...args: unknown[]) => console.error('[bench]', ...args);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const emit = (section: string, figures: Record<string, unknown>) =>
  console.log(JSON.stringify({ section, at: new Date().toISOString(), ...figures }));

/**
 * `n` jobs that ran and ended `done` `ageDays` ago, written straight into ix_jobs as the
 * completion leaves them (UUIDv7 ids of their creation time, the request digest, a response),
 * 100,000 to a statement. `tag` keeps their request ids apart from other fills'.
 */
async function fillFinished(pool: pg.Pool, n: number, ageDays: number, tag: string): Promise<void> {
  const chunk = 100_000;
  for (let from = 0; from < n; from += chunk) {
    await pool.query(
      `WITH s AS (
         SELECT i, now() - make_interval(days => $3) + i * interval '1 ms' AS at, md5($4 || i) AS h
         FROM generate_series($1::bigint, $2::bigint) i
       ), r AS (
         SELECT i, at, h, jsonb_build_object('i', i, 'kind', 'bench.noop',
           'userId', 'user-' || lpad((i % 100000)::text, 6, '0'), 'email', 'user' || (i % 100000) || '@example.com',
           'createdAt', '2024-01-01T00:00:00.000Z', 'note', $5::text) AS input
         FROM s
       )
       INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, created_at, input, request_digest, status,
         attempts, started_at, finished_at, response)
       SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
           || substr(h, 4, 15))::uuid,
         substr(h, 17, 16), 'bench', $4 || '-' || i, at, input,
         sha256(convert_to(jsonb_build_array(input, NULL::text)::text, 'UTF8')), 'done', 0, at, at,
         jsonb_build_object('ix_id', substr(h, 17, 16), 'error', NULL, 'result', jsonb_build_object('ok', true, 'i', i))
       FROM r`,
      [from, Math.min(n, from + chunk) - 1, ageDays, tag, FILLER],
    );
  }
}

async function submitMany(pool: pg.Pool, n: number, tag: string, callers = 10): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let i = next++; i < n; i = next++) {
        await jobInsertMany(pool, [
          {
            request: { ix_client_id: 'bench', request_id: `${tag}-${i}`, input: makePayload(i) },
            callbackUrl: null,
          },
        ]);
      }
    }),
  );
}

/** Claim and completion latency (ms): SAMPLES claims of CLAIM_BATCH jobs, each batch then completed. */
async function claimCompleteLatency(pool: pg.Pool, tag: string) {
  await submitMany(pool, SAMPLES * CLAIM_BATCH, tag);
  await pool.query('ANALYZE');
  const claims: number[] = [];
  const completions: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = performance.now();
    const claimed = await jobClaimMany(pool, { limit: CLAIM_BATCH, workerId: null, startNow: CLAIM_BATCH });
    const t1 = performance.now();
    await jobCompleteMany(
      pool,
      claimed.map(({ job, claimEpoch }) => ({
        jobId: job.job_id,
        attempt: job.attempts,
        claimEpoch,
        response: { ix_id: job.ix_id, error: null, result: { ok: true } },
        status: 'done' as const,
      })),
    );
    const t2 = performance.now();
    // The first tenth warms the connections and their prepared statements.
    if (s >= SAMPLES / 10) {
      claims.push(t1 - t0);
      completions.push(t2 - t1);
    }
  }
  return { claims, completions };
}

async function tableSizes(pool: pg.Pool) {
  const { rows } = await pool.query<{
    relname: string;
    heap: string;
    indexes: string;
    live: string;
    dead: string;
  }>(
    `SELECT c.relname, pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,
       coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead
     FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE c.relname IN ('ix_jobs', 'ix_job_tombstones') ORDER BY c.relname`,
  );
  const mb = (bytes: string) => round(Number(bytes) / 1_048_576, 1);
  return Object.fromEntries(
    rows.map((r) => [
      r.relname,
      { heap_mb: mb(r.heap), indexes_mb: mb(r.indexes), live: Number(r.live), dead: Number(r.dead) },
    ]),
  );
}

async function walLsn(pool: pg.Pool): Promise<string> {
  return (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
}
async function walSince(pool: pg.Pool, from: string): Promise<number> {
  const { rows } = await pool.query<{ d: string }>('SELECT pg_current_wal_lsn() - $1::pg_lsn AS d', [from]);
  return Number(rows[0]!.d);
}

/** One pass of the pruner as workers run it (the default settings), `days` from now. */
async function prunePass(pool: pg.Pool, days: number, signal?: AbortSignal): Promise<PruneResult> {
  const retention = loadConfig(process.env).retention;
  return jobPruneExpired(pool, {
    policy: retentionPolicy(retention),
    batchSize: retention.pruneBatchSize,
    dutyPercent: retention.pruneDutyPercent,
    now: new Date(Date.now() + days * DAY_MS),
    ...(signal ? { signal } : {}),
  });
}

/**
 * Waits (at most 10 min) for autovacuum to have cleaned `table` after a prune: an autovacuum run
 * ended since `since` and no more than 5 % of `removed` rows are left dead (a run that began
 * during the prune ends after it without cleaning what came later).
 */
async function autovacuumed(pool: pg.Pool, table: string, since: Date, removed: number): Promise<boolean> {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ done: boolean }>(
      `SELECT (n_dead_tup = 0 OR coalesce(last_autovacuum > $2, false)) AND n_dead_tup <= $3 AS done
       FROM pg_stat_user_tables WHERE relname = $1`,
      [table, since, Math.floor(removed * 0.05)],
    );
    if (rows[0]?.done) return true;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return false;
}

/** The worker workload of bench/worker.ts in small: LOAD_N inserted, then run; jobs/s of the run. */
async function workloadRound(
  pool: pg.Pool,
  tag: string,
): Promise<{ jobs_per_s: number; insert_per_s: number }> {
  let handled = 0;
  let allDone: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  const pipeline: Pipeline = async () => {
    if (++handled === LOAD_N) allDone();
    return { result: { ok: true } };
  };
  const t0 = performance.now();
  await submitMany(pool, LOAD_N, tag);
  const t1 = performance.now();
  const workerPool = createPool(url, { max: 4 });
  const worker = new Worker({
    pool: workerPool,
    connectionString: url,
    config: { ...loadConfig({}).worker, concurrency: 10, prefetch: 1000 },
    pipeline,
    logger: pino({ level: 'warn' }),
  });
  await worker.start();
  await finished;
  await untilDrained(pool);
  const t2 = performance.now();
  await worker.stop();
  await workerPool.end();
  return {
    insert_per_s: Math.round(LOAD_N / ((t1 - t0) / 1000)),
    jobs_per_s: Math.round(LOAD_N / ((t2 - t1) / 1000)),
  };
}

/** Samples, every 20 ms until `stop`, the sessions of this database waiting on a lock. */
function lockWaits() {
  const pool = createPool(url, { max: 1, applicationName: 'lock sampler' });
  const samples: { waiter: string; wait_event: string; blocked_by: string }[] = [];
  let count = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      count += 1;
      const { rows } = await pool.query<{ waiter: string; wait_event: string; blocked_by: string }>(
        `SELECT a.application_name || ': ' || left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60) AS waiter,
           a.wait_event, coalesce((SELECT string_agg(b.application_name, ',') FROM pg_stat_activity b
             WHERE b.pid = ANY(pg_blocking_pids(a.pid))), '') AS blocked_by
         FROM pg_stat_activity a
         WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()`,
      );
      samples.push(...rows);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      await pool.end();
      const byWaiter = new Map<string, number>();
      for (const s of samples) {
        const key = `${s.waiter} [${s.wait_event}] blocked by ${s.blocked_by || '?'}`;
        byWaiter.set(key, (byWaiter.get(key) ?? 0) + 1);
      }
      return { samples: count, waiting_samples: samples.length, waits: Object.fromEntries(byWaiter) };
    },
  };
}

async function latencySection(pool: pg.Pool) {
  // Two databases on one server, measured in alternation, so the machine's drift (others share
  // it) falls on both alike: one with no finished job, one with FINISHED of them.
  const emptyDb = `${DB}_empty`;
  const admin = createPool(`${server}/postgres`, { max: 1 });
  await admin.query(`DROP DATABASE IF EXISTS ${emptyDb} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${emptyDb}`);
  const empty = createPool(`${server}/${emptyDb}`, { max: 12, applicationName: 'bench' });
  try {
    await migrateUp(empty);
    log(`latency: filling ${FINISHED} finished jobs`);
    const t = performance.now();
    await fillFinished(pool, FINISHED, 40, 'lat-fill');
    log(`filled in ${Math.round(performance.now() - t)} ms; vacuum analyze`);
    await pool.query('VACUUM ANALYZE ix_jobs');
    const samples = {
      empty: { claim: [] as number[], complete: [] as number[] },
      full: { claim: [] as number[], complete: [] as number[] },
    };
    for (let r = 0; r < LATENCY_ROUNDS; r++) {
      for (const [which, db] of [
        ['empty', empty],
        ['full', pool],
      ] as const) {
        log(`latency round ${r + 1}: ${which}`);
        const measured = await claimCompleteLatency(db, `lat-${r}`);
        samples[which].claim.push(...measured.claims);
        samples[which].complete.push(...measured.completions);
      }
    }
    const figures = (which: 'empty' | 'full') => ({
      claim_ms: pcts(samples[which].claim),
      complete_ms: pcts(samples[which].complete),
    });
    const without = figures('empty');
    const withFinished = figures('full');
    const ratio = (a: number, b: number) => round(b / a, 2);
    emit('latency', {
      finished_rows: FINISHED,
      claim_batch: CLAIM_BATCH,
      rounds: LATENCY_ROUNDS,
      with_0: without,
      [`with_${FINISHED}`]: withFinished,
      ratio_claim_p50: ratio(without.claim_ms.p50, withFinished.claim_ms.p50),
      ratio_claim_p99: ratio(without.claim_ms.p99, withFinished.claim_ms.p99),
      ratio_complete_p50: ratio(without.complete_ms.p50, withFinished.complete_ms.p50),
      ratio_complete_p99: ratio(without.complete_ms.p99, withFinished.complete_ms.p99),
    });
  } finally {
    await empty.end();
    await admin.query(`DROP DATABASE IF EXISTS ${emptyDb} WITH (FORCE)`);
    await admin.end();
  }
}

async function pruneUnderLoadSection(pool: pg.Pool) {
  await pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_tombstones');
  log(`prune under load: filling ${FINISHED} jobs finished 40 days ago`);
  await fillFinished(pool, FINISHED, 40, 'load-fill');
  await pool.query('VACUUM ANALYZE ix_jobs');
  // Rounds of the workload alone and with the pruner running, in alternation, so that the
  // machine's drift (others share it) falls on both alike: each "with" round runs a pass that is
  // stopped (its signal) when the round ends; the next pass goes on where it left off.
  const alone: number[] = [];
  const during: number[] = [];
  const totals = { pruned: 0, statements: 0, longestStatementMs: 0, waiting: 0, pruneMs: 0 };
  const waits = lockWaits();
  const pruneClient = createPool(url, { max: 1, applicationName: 'ix pruner' });
  const wal0 = await walLsn(pool);
  let r = 0;
  for (let finished = false; !finished; ) {
    alone.push((await workloadRound(pool, `alone-${r}`)).jobs_per_s);
    const stop = new AbortController();
    const t0 = performance.now();
    const pass = prunePass(pruneClient, 0, stop.signal).then((result) => {
      finished = !stop.signal.aborted;
      return result;
    });
    const round = await workloadRound(pool, `during-${r}`);
    // A round the pass outlived ran beside it whole; the last one may not have.
    if (!finished) during.push(round.jobs_per_s);
    stop.abort();
    const result = await pass;
    totals.pruneMs += performance.now() - t0;
    totals.pruned += result.pruned.done;
    totals.statements += result.statements;
    totals.longestStatementMs = Math.max(totals.longestStatementMs, result.longestStatementMs);
    totals.waiting = result.waiting;
    log(
      `prune under load round ${++r}: pruned ${totals.pruned} so far; ${round.jobs_per_s} jobs/s beside it`,
    );
  }
  const wal = await walSince(pool, wal0);
  const locks = await waits.stop();
  await pruneClient.end();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  emit('prune_under_load', {
    duty_percent: loadConfig(process.env).retention.pruneDutyPercent,
    pruned_jobs: totals.pruned,
    prune_s: round(totals.pruneMs / 1000, 1),
    pruned_per_s: Math.round(totals.pruned / (totals.pruneMs / 1000)),
    prune_statements: totals.statements,
    prune_longest_statement_ms: round(totals.longestStatementMs, 1),
    prune_waiting_left: totals.waiting,
    wal_bytes_rounds_and_prune: wal,
    load_jobs_per_round: LOAD_N,
    jobs_per_s_alone: alone,
    jobs_per_s_during: during,
    during_over_alone_median: round(median(during) / median(alone), 2),
    lock_waits: locks,
  });
}

async function bloatSection(pool: pg.Pool) {
  await pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_tombstones');
  await pool.query('VACUUM ix_jobs, ix_job_tombstones');
  const rounds = [];
  for (let k = 1; k <= ROUNDS; k++) {
    log(`bloat round ${k}: fill ${ROUND_ROWS}`);
    // Each round's jobs finished 40 days before the pass, and the pass runs 40 days further on
    // than the last, so the last round's tombstones (30 days) expire in it too.
    await fillFinished(pool, ROUND_ROWS, 40, `bloat-${k}`);
    const filled = await tableSizes(pool);
    const wal0 = await walLsn(pool);
    const t0 = performance.now();
    const result = await prunePass(pool, (k - 1) * 40);
    const pruneMs = performance.now() - t0;
    const wal = await walSince(pool, wal0);
    const since = new Date();
    log(
      `bloat round ${k}: pruned ${result.pruned.done} in ${Math.round(pruneMs)} ms; waiting for autovacuum`,
    );
    const vacuumed =
      (await autovacuumed(pool, 'ix_jobs', since, result.pruned.done)) &&
      (await autovacuumed(pool, 'ix_job_tombstones', since, result.tombstonesExpired));
    rounds.push({
      round: k,
      filled,
      pruned: result.pruned.done,
      tombstones_expired: result.tombstonesExpired,
      prune_s: round(pruneMs / 1000, 1),
      prune_wal_bytes_per_job: Math.round(wal / Math.max(1, result.pruned.done)),
      prune_longest_statement_ms: round(result.longestStatementMs, 1),
      autovacuumed: vacuumed,
      after_prune_and_autovacuum: await tableSizes(pool),
    });
  }
  emit('bloat', { rows_per_round: ROUND_ROWS, rounds });
}

async function layoutSection(pool: pg.Pool) {
  await pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_tombstones');
  // One day's partition of a table partitioned by time, holding ROUND_ROWS finished jobs.
  await pool.query('DROP TABLE IF EXISTS bench_jobs_by_day');
  await pool.query(
    `CREATE TABLE bench_jobs_by_day (LIKE ix_jobs INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)`,
  );
  await pool.query(
    `CREATE TABLE bench_jobs_day PARTITION OF bench_jobs_by_day FOR VALUES FROM ('-infinity') TO ('infinity') WITH (fillfactor = 30)`,
  );
  await pool.query('ALTER TABLE bench_jobs_by_day ADD PRIMARY KEY (job_id, created_at)');
  await fillFinished(pool, ROUND_ROWS, 40, 'layout');
  await pool.query('INSERT INTO bench_jobs_by_day SELECT * FROM ix_jobs');
  await pool.query('VACUUM ANALYZE ix_jobs, bench_jobs_by_day');
  let wal0 = await walLsn(pool);
  let t0 = performance.now();
  await pool.query('ALTER TABLE bench_jobs_by_day DETACH PARTITION bench_jobs_day');
  await pool.query('DROP TABLE bench_jobs_day');
  const drop = { ms: round(performance.now() - t0, 1), wal_bytes: await walSince(pool, wal0) };
  wal0 = await walLsn(pool);
  t0 = performance.now();
  const pruned = await prunePass(pool, 0);
  const batched = {
    ms: round(performance.now() - t0, 1),
    wal_bytes: await walSince(pool, wal0),
    longest_statement_ms: round(pruned.longestStatementMs, 1),
  };
  // Partitioned by time, ix_jobs can hold no unique key on (client_id, request_id) alone, so the
  // key would live in a table of its own, written by every submit.
  await pool.query('DROP TABLE IF EXISTS bench_keys');
  await pool.query(
    'CREATE TABLE bench_keys (client_id text, request_id text, job_id uuid NOT NULL, PRIMARY KEY (client_id, request_id))',
  );
  const keys = 100_000;
  wal0 = await walLsn(pool);
  t0 = performance.now();
  for (let from = 0; from < keys; from += 1_000)
    await pool.query(
      `INSERT INTO bench_keys SELECT 'bench', 'key-' || i, gen_random_uuid() FROM generate_series($1::int, $2::int) i`,
      [from, from + 999],
    );
  const keyTable = {
    wal_bytes_per_job: Math.round((await walSince(pool, wal0)) / keys),
    us_per_job: round(((performance.now() - t0) * 1000) / keys, 1),
  };
  await pool.query('DROP TABLE bench_keys, bench_jobs_by_day');
  emit('layout', {
    rows: ROUND_ROWS,
    drop_partition: drop,
    batched_prune: batched,
    key_table_per_submit: keyTable,
  });
}

async function main() {
  const admin = createPool(`${server}/postgres`, { max: 1 });
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const pool = createPool(url, { max: 12, applicationName: 'bench' });
  await migrateUp(pool);
  try {
    if (SECTIONS.includes('latency')) await latencySection(pool);
    if (SECTIONS.includes('prune_under_load')) await pruneUnderLoadSection(pool);
    if (SECTIONS.includes('bloat')) await bloatSection(pool);
    if (SECTIONS.includes('layout')) await layoutSection(pool);
  } finally {
    await pool.end();
  }
}

await main();
