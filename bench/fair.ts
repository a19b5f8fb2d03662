/**
 * Many clients, one queue: client A floods FLOOD jobs at once while clients B–F each submit one job
 * every TRICKLE_MS for the whole run, into one worker (concurrency C, no prefetch) whose pipeline
 * takes PIPELINE_MS. Prints one JSON line: B–F's wait from submit to start (p50, p99), A's
 * throughput and the total. Run: npm run bench:fair. To compare with another tree's claim (e.g.
 * the oldest-first one before fair claiming), run this same file from that tree: bench/fair.sh.
 * Env: FLOOD (20000), C (10), PIPELINE_MS (20), TRICKLE_MS (200), PREFETCH (0),
 *      PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres), IX_BENCH_DB (bench_fair, recreated).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { createPool, jobInsertMany, migrateUp, Notifier } from '../src/store/index.js';
import { type Pipeline, Worker } from '../src/worker/index.js';
import { env, recreateDatabase, serverUrl } from './env.js';
import { pcts } from './workload.js';

const FLOOD = Number(env('FLOOD', '20000'));
const C = Number(env('C', '10'));
const PIPELINE_MS = Number(env('PIPELINE_MS', '20'));
const TRICKLE_MS = Number(env('TRICKLE_MS', '200'));
const PREFETCH = Number(env('PREFETCH', '0'));
const DB = env('IX_BENCH_DB', 'bench_fair');
const TRICKLERS = ['b', 'c', 'd', 'e', 'f'];
const server = serverUrl();
const url = `${server}/${DB}`;

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (...args: unknown[]) => console.error('[bench:fair]', ...args);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  await recreateDatabase(DB);

  const pool = createPool(url, { max: 8 });
  await migrateUp(pool);
  const notifier = Notifier.pending(pool);
  const submit = async (client: string, requestId: string) => {
    await jobInsertMany(pool, [
      { request: { ix_client_id: client, request_id: requestId, input: { client } }, callbackUrl: null },
    ]);
    notifier.notify();
  };

  // A's flood is queued before the worker starts, as a backlog would be.
  for (let from = 0; from < FLOOD; from += 1_000) {
    const chunk = Array.from({ length: Math.min(1_000, FLOOD - from) }, (_, k) => ({
      request: { ix_client_id: 'a', request_id: `a-${from + k}`, input: { client: 'a' } },
      callbackUrl: null,
    }));
    await jobInsertMany(pool, chunk);
  }
  log(`queued ${FLOOD} jobs of a`);

  const pipeline: Pipeline = () => sleep(PIPELINE_MS).then(() => ({ result: { ok: true } }));
  const workerPool = createPool(url, { max: 4, genericPlans: true });
  const worker = new Worker({
    pool: workerPool,
    connectionString: url,
    config: { ...loadConfig({}).worker, concurrency: C, prefetch: PREFETCH },
    pipeline,
    logger: pino({ level: 'warn' }),
  });
  const started = performance.now();
  await worker.start();

  // B–F submit one job every TRICKLE_MS each, staggered, until A's flood is done.
  let floodDone = false;
  const tricklers = TRICKLERS.map(async (client, k) => {
    await sleep((TRICKLE_MS * k) / TRICKLERS.length);
    for (let i = 0; !floodDone; i++) {
      await submit(client, `${client}-${i}`);
      await sleep(TRICKLE_MS);
    }
  });
  const count = async (where: string) =>
    (
      await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ix_jobs WHERE status = 'done' AND ${where}`,
      )
    ).rows[0]!.n;
  while ((await count(`client_id = 'a'`)) < FLOOD) await sleep(50);
  const floodMs = performance.now() - started;
  floodDone = true;
  await Promise.all(tricklers);
  // The trickled jobs still queued or running finish before the worker stops.
  while ((await count('true')) < (await pool.query('SELECT count(*)::int AS n FROM ix_jobs')).rows[0].n)
    await sleep(20);
  const totalMs = performance.now() - started;
  await worker.stop();
  await workerPool.end();

  const { rows } = await pool.query<{ wait_ms: number }>(
    `SELECT extract(epoch FROM started_at - created_at) * 1000 AS wait_ms FROM ix_jobs WHERE client_id <> 'a'`,
  );
  const waits = pcts(rows.map((r) => r.wait_ms));
  const total = (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_jobs')).rows[0]!.n;
  await pool.end();
  console.log(
    JSON.stringify({
      bench: 'fair',
      flood: FLOOD,
      concurrency: C,
      pipeline_ms: PIPELINE_MS,
      trickle_ms: TRICKLE_MS,
      trickled_jobs: rows.length,
      trickle_wait_p50_ms: round(waits.p50),
      trickle_wait_p99_ms: round(waits.p99),
      trickle_wait_max_ms: round(waits.max),
      a_jobs_per_s: round(FLOOD / (floodMs / 1000)),
      total_jobs_per_s: round(total / (totalMs / 1000)),
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
