/**
 * Many ix processes, one PostgreSQL: for each N of WORKERS, APIS `ix api` processes and N `ix worker`
 * processes (the built CLI, as users run it) against one database, while SUBMITTERS concurrent
 * HTTP clients submit JOBS jobs spread over the APIs. Prints one JSON line per N: jobs/s end to
 * end, PostgreSQL CPU per job (this cluster's alone), connections used, lock waits seen in
 * pg_stat_activity, how often a worker held nothing while jobs waited, the committed
 * transactions and WAL flushes per job, each job's wait from its submit to its start and to its
 * recorded outcome, and (where the server loads pg_stat_statements) the claims, completions,
 * submits, notifications and next-due probes sent per job. Run: npm run bench:processes
 * Env: WORKERS (1,2,4), APIS (2), JOBS (20000), SUBMITTERS (32), C (10), PREFETCH (100),
 *      RATE (unset: as fast as the APIs take them; a number: submissions a second, job i no
 *      sooner than i ÷ RATE s from the start, so runs with different N see the same load),
 *      IX_WORKER_BATCH_INTERVAL_MS (unset: ix's default), passed to the workers,
 *      IX_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/bench_procs, recreated).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { createPool, migrateUp } from '../src/store/index.js';
import { HELD_JOBS } from '../src/store/jobs/leases.js';
import { backendCpuMicros, backendCpuSpent, clusterCpuMicros } from './cpu.js';
import { env } from './env.js';
import { databaseName, databaseUrl, onServer, startIxApi } from './ix-process.js';
import { makePayload } from './workload.js';

const WORKERS = env('WORKERS', '1,2,4').split(',').map(Number);
const APIS = Number(env('APIS', '2'));
const JOBS = Number(env('JOBS', '20000'));
const SUBMITTERS = Number(env('SUBMITTERS', '32'));
const C = env('C', '10');
const PREFETCH = env('PREFETCH', '100');
const RATE = Number(env('RATE', '0'));
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const database = databaseUrl('postgres://postgres@127.0.0.1:5432/bench_procs');
const name = databaseName(database);

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (...args: unknown[]) => console.error('[bench:processes]', ...args);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function startWorker(): ChildProcess {
  return spawn(process.execPath, [CLI, 'worker'], {
    env: {
      PATH: process.env.PATH,
      IX_POSTGRES_URL: database.toString(),
      IX_LOG_LEVEL: 'warn',
      IX_WORKER_CONCURRENCY: C,
      IX_WORKER_PREFETCH: PREFETCH,
      ...(process.env.IX_WORKER_BATCH_INTERVAL_MS === undefined
        ? {}
        : { IX_WORKER_BATCH_INTERVAL_MS: process.env.IX_WORKER_BATCH_INTERVAL_MS }),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

interface Samples {
  connections: number;
  lockWaits: number;
  waitEvents: Map<string, number>;
  samples: number;
  /** Samples in which some live worker held no job while more jobs were ready than all held. */
  idleWhilePending: number;
}

/** Samples pg_stat_activity and the live tables every 50 ms until `until` resolves. */
async function sample(probe: pg.Pool, workers: number, until: Promise<void>): Promise<Samples> {
  const seen: Samples = {
    connections: 0,
    lockWaits: 0,
    waitEvents: new Map(),
    samples: 0,
    idleWhilePending: 0,
  };
  let done = false;
  void until.then(() => {
    done = true;
  });
  while (!done) {
    const { rows: activity } = await probe.query<{ n: number; wait: string | null }>(
      `SELECT count(*)::int AS n, CASE WHEN wait_event_type IN ('Lock', 'LWLock') THEN wait_event_type || ':' || wait_event END AS wait
       FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() GROUP BY 2`,
      [name],
    );
    seen.connections = Math.max(
      seen.connections,
      activity.reduce((sum, r) => sum + r.n, 0),
    );
    for (const row of activity) {
      if (row.wait === null) continue;
      seen.lockWaits += row.n;
      seen.waitEvents.set(row.wait, (seen.waitEvents.get(row.wait) ?? 0) + row.n);
    }
    const { rows } = await probe.query<{ queued: number; idle: number }>(
      `SELECT (SELECT count(*) FROM ix_job_queue WHERE ready_at <= now())::int AS queued,
         (SELECT count(*) FROM ix_workers w
          WHERE NOT EXISTS (SELECT 1 FROM ${HELD_JOBS} h WHERE h.worker_id = w.worker_id))::int AS idle`,
    );
    seen.samples += 1;
    if (rows[0]!.queued > workers * (Number(C) + Number(PREFETCH)) && rows[0]!.idle > 0)
      seen.idleWhilePending += 1;
    await sleep(50);
  }
  return seen;
}

/**
 * The database's committed transactions and the cluster's WAL flushes so far. A commit that wrote
 * something waits for its WAL to reach the disk: what each costs PostgreSQL, whoever sends it.
 * Backends report these about once a second, hence the wait.
 */
async function commitCounters(probe: pg.Pool): Promise<{ commits: number; walFlushes: number }> {
  await sleep(1_500);
  const { rows } = await probe.query<{ commits: string; wal_flushes: string }>(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
       (SELECT wal_sync FROM pg_stat_wal) AS wal_flushes`,
  );
  return { commits: Number(rows[0]!.commits), walFlushes: Number(rows[0]!.wal_flushes) };
}

/** The statements of a job's life, told apart by how their text begins (see src/store/). */
const STATEMENT_KINDS = `CASE
    WHEN query LIKE 'WITH RECURSIVE queued_clients%' AND query LIKE '%ix_job_slots%' THEN 'claims'
    WHEN query LIKE 'WITH RECURSIVE queued_clients%' THEN 'next_due_probes'
    WHEN query LIKE 'WITH outcome AS%' THEN 'completions'
    WHEN query LIKE 'WITH submitted AS%' THEN 'submits'
    WHEN query LIKE '%pg_notify%' THEN 'notifications'
  END`;

/**
 * Starts counting statements, where the server loads pg_stat_statements (a cluster of the
 * benchmark's own; see bench/RESULTS.md); false where it does not, and nothing is counted.
 */
async function countStatements(probe: pg.Pool): Promise<boolean> {
  try {
    await probe.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await probe.query('SELECT pg_stat_statements_reset()');
    return true;
  } catch {
    return false;
  }
}

/** Calls a job of each kind of STATEMENT_KINDS in this database since countStatements. */
async function statementsPerJob(probe: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await probe.query<{ kind: string; calls: string }>(
    `SELECT kind, sum(calls) AS calls FROM (
       SELECT ${STATEMENT_KINDS} AS kind, calls FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ) s WHERE kind IS NOT NULL GROUP BY kind ORDER BY kind`,
  );
  return Object.fromEntries(rows.map((r) => [r.kind, round(Number(r.calls) / JOBS, 3)]));
}

async function run(workers: number): Promise<void> {
  await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onServer(database, `CREATE DATABASE ${name}`);
  const probe = createPool(database.toString(), { max: 2 });
  await migrateUp(probe);
  const apis = await Promise.all(Array.from({ length: APIS }, () => startIxApi(database, {})));
  const children = Array.from({ length: workers }, startWorker);
  try {
    // Every worker registered before the clock starts.
    while (
      (await probe.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_workers')).rows[0]!.n < workers
    )
      await sleep(50);
    const counting = await countStatements(probe);
    const cpuBefore = await clusterCpuMicros(probe);
    const countersBefore = await commitCounters(probe);
    const backendsBefore = await backendCpuMicros(probe);
    const started = performance.now();
    let next = 0;
    const submitters = Array.from({ length: SUBMITTERS }, async (_, s) => {
      const api = apis[s % APIS]!.address;
      for (let i = next++; i < JOBS; i = next++) {
        if (RATE > 0) {
          const dueInMs = started + (i * 1000) / RATE - performance.now();
          if (dueInMs > 0) await sleep(dueInMs);
        }
        const response = await fetch(`${api}/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            request: { ix_client_id: `client-${i % 8}`, request_id: `r-${i}`, input: makePayload(i) },
            callback_url: null,
          }),
        });
        if (response.status !== 201)
          throw new Error(`submit ${i}: ${response.status} ${await response.text()}`);
      }
    });
    const allDone = (async () => {
      await Promise.all(submitters);
      while (
        (await probe.query<{ n: number }>(`SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'done'`))
          .rows[0]!.n < JOBS
      )
        await sleep(20);
    })();
    const seen = await sample(probe, workers, allDone);
    await allDone;
    const ms = performance.now() - started;
    const cpuAfter = await clusterCpuMicros(probe);
    const backendsAfter = await backendCpuMicros(probe);
    const countersAfter = await commitCounters(probe);
    const { rows: spread } = await probe.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ix_jobs GROUP BY worker_id ORDER BY 1',
    );
    // From the submit's commit (created_at) to the job's start and to its recorded outcome.
    const { rows: latency } = await probe.query<{ started: number[]; finished: number[] }>(
      `SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS started,
         percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000) AS finished
       FROM ix_jobs`,
    );
    const percentiles = (ms: number[]) => ({ p50: round(ms[0]!), p95: round(ms[1]!), p99: round(ms[2]!) });
    console.log(
      JSON.stringify({
        bench: 'processes',
        workers,
        apis: APIS,
        jobs: JOBS,
        rate: RATE > 0 ? RATE : null,
        jobs_per_s: round(JOBS / (ms / 1000)),
        postgres_cpu_us_per_job:
          cpuBefore === null || cpuAfter === null ? null : round((cpuAfter - cpuBefore) / JOBS),
        max_connections: seen.connections,
        lock_wait_samples: seen.lockWaits,
        wait_events: Object.fromEntries(seen.waitEvents),
        samples: seen.samples,
        idle_worker_while_pending_samples: seen.idleWhilePending,
        jobs_per_worker: spread.map((r) => r.n),
        start_latency_ms: percentiles(latency[0]!.started),
        finish_latency_ms: percentiles(latency[0]!.finished),
        // Backends that exited meanwhile are missing here (none should: pools keep theirs).
        postgres_cpu_us_per_job_by_process: Object.fromEntries(
          [...backendCpuSpent(backendsBefore, backendsAfter)]
            .filter(([, micros]) => micros > 0)
            .map(([kind, micros]) => [kind, round(micros / JOBS)]),
        ),
        commits_per_job: round((countersAfter.commits - countersBefore.commits) / JOBS, 2),
        statements_per_job: counting ? await statementsPerJob(probe) : null,
        wal_flushes_per_job: round((countersAfter.walFlushes - countersBefore.walFlushes) / JOBS, 2),
      }),
    );
  } finally {
    await Promise.all(children.map(stop));
    await Promise.all(apis.map((api) => stop(api.child)));
    await probe.end();
  }
}

async function main() {
  for (const workers of WORKERS) {
    log(`${workers} worker process(es), ${APIS} API process(es), ${JOBS} jobs`);
    await run(workers);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
