/**
 * The worker's own CPU per job, and nothing else: a queue of N no-op jobs is filled first, then a
 * worker as `ix worker` runs it (the built dist/, a generic-plan pool of 4, concurrency 10,
 * prefetch 1,000, metrics on) processes them, and only that is measured. The worker's process is
 * single-threaded, so its CPU a job bounds its throughput. Prints one JSON line.
 * Run: npm run bench:process-cpu (builds first)
 * Env: N (40000), IX_BENCH_DB (bench_process_cpu, recreated), PGHOST/PGPORT/PGUSER,
 *      PROFILE (unset; a path: a V8 CPU profile of the processing is written there).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pino } from 'pino';
import { builtIx, env, recreateDatabase, serverUrl } from './env.js';
import { makePayload, untilDrained } from './workload.js';

const N = Number(env('N', '40000'));
const DB = env('IX_BENCH_DB', 'bench_process_cpu');
const PROFILE = env('PROFILE', '');

async function main() {
  const { metricsFor, loadConfig, Worker, ...store } = await builtIx();
  await recreateDatabase(DB);
  const url = `${serverUrl()}/${DB}`;
  const direct = store.createPool(url, { max: 2 });
  await store.migrateUp(direct);
  for (let first = 0; first < N; first += 1000) {
    const submissions = Array.from({ length: Math.min(1000, N - first) }, (_, i) => ({
      request: { ix_client_id: 'bench', request_id: `r-${first + i}`, input: makePayload(first + i) },
      callbackUrl: null,
    }));
    await store.jobInsertMany(direct, submissions);
  }
  await direct.query('VACUUM ANALYZE');

  let handled = 0;
  let allHandled = () => {};
  const handledAll = new Promise<void>((resolve) => {
    allHandled = resolve;
  });
  const pool = store.createPool(url, { max: 4, genericPlans: true });
  const config = loadConfig({});
  const worker = new Worker({
    pool,
    connectionString: url,
    config: { ...config.worker, concurrency: 10, prefetch: 1000 },
    pipeline: async (request) => {
      if (++handled === N) allHandled();
      return { result: { ok: true, i: (request.input as { i: number }).i } };
    },
    logger: pino({ level: 'warn' }),
    metrics: metricsFor(pool, config),
  });

  const session = new Session();
  if (PROFILE) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await worker.start();
  await handledAll;
  await untilDrained(direct);
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  if (PROFILE) writeFileSync(PROFILE, JSON.stringify((await session.post('Profiler.stop')).profile));
  console.log(
    JSON.stringify({
      bench: 'process-cpu',
      jobs: N,
      process_per_s: Math.round(N / (ms / 1000)),
      worker_cpu_us_per_job: Math.round(((cpu.user + cpu.system) / N) * 10) / 10,
    }),
  );
  await worker.stop();
  await pool.end();
  await direct.end();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
