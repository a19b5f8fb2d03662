/**
 * ix on the workload of ../shared/bench-peers (graphile-worker, pg-boss): prints one JSON line
 * with the same field names, plus WAL bytes (jobs submitted one at a time, and in batches of
 * BULK_SIZE, each with their processing), statements sent by the worker, and the worker's and
 * its PostgreSQL cluster's CPU, per job. ix runs as `ix worker` runs it, from the built dist/.
 * Run: npm run bench:worker (builds first)
 * Env: N (20000), C (10), PREFETCH (1000), ENQ_CONC (10), BULK_SIZE (1000), LAT_SAMPLES (200), LAT_WARMUP (10),
 *      PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres), IX_BENCH_DB (bench_ix, recreated),
 *      IX_DB_POOLER and IX_DB_PREPARED_STATEMENTS (as ix reads them), IX_BENCH_POOLER_URL (unset;
 *      e.g. postgres://postgres@127.0.0.1:6432: ix's pools go through that pooler, LISTEN and the
 *      harness's probes stay direct, as with IX_LISTEN_URL).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { Pipeline } from '../src/worker/index.js';
import { clusterCpuMicros, ownCpuMicros } from './cpu.js';
import { builtIx, env, recreateDatabase, serverUrl } from './env.js';
import { makePayload, pcts, untilDrained } from './workload.js';

const N = Number(env('N', '20000'));
const C = Number(env('C', '10'));
const PREFETCH = Number(env('PREFETCH', '1000'));
const ENQ_CONC = Number(env('ENQ_CONC', '10'));
const BULK_SIZE = Number(env('BULK_SIZE', '1000'));
const LAT_SAMPLES = Number(env('LAT_SAMPLES', '200'));
const LAT_WARMUP = Number(env('LAT_WARMUP', '10'));
const DB = env('IX_BENCH_DB', 'bench_ix');
const server = serverUrl();
const url = `${server}/${DB}`;
const poolerServer = env('IX_BENCH_POOLER_URL', '');
const ixUrl = poolerServer ? `${poolerServer}/${DB}` : url;

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (...args: unknown[]) => console.error('[bench]', ...args);

async function main() {
  const { metricsFor, loadConfig, createPool, jobInsertMany, migrateUp, Notifier, Worker } = await builtIx();
  const dbConfig = loadConfig(process.env);
  /** A pool of ix's, as its settings make one (startup parameters, prepared statements). */
  const ixPool = (max: number, genericPlans = false) =>
    createPool(ixUrl, {
      max,
      transactionPooler: dbConfig.dbPooler === 'transaction',
      preparedStatements: dbConfig.dbPreparedStatements,
      genericPlans,
    });
  await recreateDatabase(DB);

  const direct = createPool(url, { max: 1 });
  await migrateUp(direct);
  await direct.end();
  const pool = ixPool(Math.max(ENQ_CONC, 4));
  const probe = createPool(url, { max: 2 });
  const walLsn = async () =>
    (await probe.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
  const walSince = async (from: string) =>
    Number(
      (await probe.query<{ d: string }>('SELECT pg_current_wal_lsn() - $1::pg_lsn AS d', [from])).rows[0]!.d,
    );

  const config = { ...loadConfig({}).worker, concurrency: C, prefetch: PREFETCH };
  const logger = pino({ level: 'warn' });
  let onJob: ((i: number) => void) | null = null;
  const pipeline: Pipeline = async (request) => {
    const i = (request.input as { i: number }).i;
    onJob?.(i);
    return { result: { ok: true, i } };
  };
  // As `ix worker` makes its pool.
  const workerPool = () => ixPool(4, true);

  // A: enqueue N one at a time through jobInsertMany with ENQ_CONC concurrent callers, no worker running.
  // As the API does: commit the job, then wake workers through the coalescing notifier.
  const notifier = Notifier.pending(pool);
  const wal0 = await walLsn();
  let next = 0;
  let t = performance.now();
  await Promise.all(
    Array.from({ length: ENQ_CONC }, async () => {
      for (let i = next++; i < N; i = next++) {
        await jobInsertMany(pool, [
          {
            request: { ix_client_id: 'bench', request_id: `r-${i}`, input: makePayload(i) },
            callbackUrl: null,
          },
        ]);
        notifier.notify();
      }
    }),
  );
  await notifier.settled();
  const enqueueMs = performance.now() - t;
  log(`enqueue of ${N}: ${round(enqueueMs)} ms`);

  // Process from the pre-filled queue: clock from worker start to every job finished.
  let handled = 0;
  let firstJobAt = 0;
  let allHandled: (() => void) | null = null;
  onJob = () => {
    if (handled === 0) firstJobAt = performance.now();
    if (++handled === N) allHandled?.();
  };
  /** Wall time, and the CPU this process (the worker) and PostgreSQL spent, per job. */
  async function processPhase(label: string) {
    const wPool = workerPool();
    // Every statement the worker's pool sends (its one LISTEN connection is outside it).
    let statements = 0;
    wPool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        statements += 1;
        return query(...args);
      }) as typeof client.query;
    });
    // Counted as `ix worker` counts them (its metrics are always on): the cost is the worker's.
    // IX_BENCH_METRICS=off leaves them out, to tell their cost apart.
    const metrics = env('IX_BENCH_METRICS', 'on') === 'off' ? null : metricsFor(wPool, loadConfig({}));
    const worker = new Worker({ pool: wPool, connectionString: url, config, pipeline, logger, metrics });
    handled = 0;
    const handlersDone = new Promise<void>((resolve) => {
      allHandled = resolve;
    });
    const postgresBefore = await clusterCpuMicros(probe);
    const ownBefore = ownCpuMicros();
    const started = performance.now();
    await worker.start();
    // Every handler has run, then every outcome is recorded (checked in full below).
    await handlersDone;
    const handlersDoneMs = performance.now() - started;
    await untilDrained(probe);
    const ms = performance.now() - started;
    const workerCpu = ownCpuMicros() - ownBefore;
    const postgresAfter = await clusterCpuMicros(probe);
    await worker.stop();
    await wPool.end();
    log(`${label}: handled ${handled}, all finished in ${round(ms)} ms`);
    return {
      ms,
      // As the peers' benchmarks report them: how long until the first job ran, and the last.
      detail: {
        process_per_s: round(N / (ms / 1000)),
        process_wall_ms: round(ms),
        handlers_done_ms: round(handlersDoneMs),
        first_job_ms: round(firstJobAt - started),
      },
      statementsPerJob: round(statements / N, 3),
      workerCpuPerJob: round(workerCpu / N),
      postgresCpuPerJob:
        postgresBefore === null || postgresAfter === null
          ? null
          : round((postgresAfter - postgresBefore) / N),
    };
  }
  const processed = await processPhase('process after single enqueue');
  const processMs = processed.ms;
  const walBytes = await walSince(wal0);
  log(`WAL for enqueue + process: ${walBytes} bytes`);

  // A2: bulk enqueue through jobInsertMany in chunks of BULK_SIZE, then process again.
  const walBulk0 = await walLsn();
  t = performance.now();
  for (let s = 0; s < N; s += BULK_SIZE) {
    const chunk = [];
    for (let i = s; i < Math.min(N, s + BULK_SIZE); i++) {
      chunk.push({
        request: { ix_client_id: 'bench', request_id: `bulk-${i}`, input: makePayload(i) },
        callbackUrl: null,
      });
    }
    await jobInsertMany(pool, chunk);
    notifier.notify();
  }
  await notifier.settled();
  const enqueueBulkMs = performance.now() - t;
  log(`bulk enqueue of ${N}: ${round(enqueueBulkMs)} ms`);
  const processedAfterBulk = await processPhase('process after bulk enqueue');
  const processAfterBulkMs = processedAfterBulk.ms;
  const walBulkBytes = await walSince(walBulk0);
  log(`WAL for bulk enqueue + process: ${walBulkBytes} bytes`);

  // Every job kept its row and response.
  const { rows: kept } = await probe.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'done' AND response -> 'result' ->> 'ok' = 'true'`,
  );
  if (kept[0]!.n !== 2 * N)
    throw new Error(`expected ${2 * N} done jobs with responses, found ${kept[0]!.n}`);

  // B: latency with an idle worker (prefetch 0: one job at a time is the point).
  const latPool = workerPool();
  const idle = new Worker({
    pool: latPool,
    connectionString: url,
    config: { ...config, prefetch: 0 },
    pipeline,
    logger,
  });
  await idle.start();
  await new Promise((r) => setTimeout(r, 500));
  const start: number[] = [];
  const complete: number[] = [];
  for (let k = 0; k < LAT_WARMUP + LAT_SAMPLES; k++) {
    let startedAt = 0;
    const started = new Promise<void>((resolve) => {
      onJob = () => {
        startedAt = performance.now();
        resolve();
      };
    });
    const [inserted] = await jobInsertMany(pool, [
      {
        request: { ix_client_id: 'bench', request_id: `lat-${k}`, input: makePayload(k) },
        callbackUrl: null,
      },
    ]);
    const job = inserted?.job;
    if (!job) throw new Error(`bench: latency job ${k} was not inserted`);
    const returned = performance.now();
    notifier.notify();
    await started;
    let completedAt = 0;
    for (;;) {
      const { rows } = await probe.query<{ status: string }>('SELECT status FROM ix_jobs WHERE job_id = $1', [
        job.job_id,
      ]);
      if (rows[0]?.status === 'done') {
        completedAt = performance.now();
        break;
      }
    }
    if (k >= LAT_WARMUP) {
      start.push(startedAt - returned);
      complete.push(completedAt - returned);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  onJob = null;
  await idle.stop();
  await latPool.end();
  await pool.end();
  await probe.end();

  console.log(
    JSON.stringify({
      peer: 'ix',
      version: '0.1.0',
      config: {
        N,
        C,
        prefetch: PREFETCH,
        enqueue_concurrency: ENQ_CONC,
        bulk_size: BULK_SIZE,
        worker_pool: 4,
        payload_bytes: JSON.stringify(makePayload(N - 1)).length,
        keeps_rows_and_responses: true,
        via_pooler: poolerServer !== '',
        prepared_statements: dbConfig.dbPreparedStatements,
      },
      enqueue_per_s: round(N / (enqueueMs / 1000)),
      enqueue_bulk_per_s: round(N / (enqueueBulkMs / 1000)),
      process_per_s: round(N / (processMs / 1000)),
      process_after_bulk_per_s: round(N / (processAfterBulkMs / 1000)),
      process_detail: { after_single: processed.detail, after_bulk: processedAfterBulk.detail },
      wal_bytes_per_job: round(walBytes / N),
      // As the pgbench bound's loop inserts: in batches, not a transaction a job.
      wal_bytes_per_job_after_bulk: round(walBulkBytes / N),
      // ix's own: where the machine's two cores went while processing (after single enqueue).
      worker_cpu_us_per_job: processed.workerCpuPerJob,
      worker_statements_per_job: processed.statementsPerJob,
      postgres_cpu_us_per_job: processed.postgresCpuPerJob,
      latency_start_ms: pcts(start),
      latency_complete_ms: pcts(complete),
      latency_samples: LAT_SAMPLES,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
