/**
 * What operators cost with a large table: `/metrics` and `/admin/overview` over HTTP against
 * ROWS jobs (default 1,000,000), and each search filter of `/admin/jobs`. Prints one JSON line
 * (milliseconds per request: p50, p95, max) and, on stderr, the plan of each statement.
 * Run: npm run bench:operators
 * Env: ROWS (1000000), DAYS (7: the jobs are spread over this many days, so ROWS / DAYS / 24 were
 *      submitted in the last hour), LAST_HOUR (extra jobs submitted in the last hour, 0),
 *      REQUESTS (200 per endpoint), PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres),
 *      IX_BENCH_DB (bench_operators, recreated).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startApi } from '../src/api/index.js';
import { loadConfig } from '../src/config.js';
import { Metrics } from '../src/metrics/index.js';
import { jobSearchQuery } from '../src/store/admin.js';
import { createPool, liveCounts, migrateUp, recentFigures } from '../src/store/index.js';
import { env, recreateDatabase, serverUrl } from './env.js';

const ROWS = Number(env('ROWS', '1000000'));
const DAYS = Number(env('DAYS', '7'));
const LAST_HOUR = Number(env('LAST_HOUR', '0'));
const REQUESTS = Number(env('REQUESTS', '200'));
const DB = env('IX_BENCH_DB', 'bench_operators');
const server = serverUrl();
const url = `${server}/${DB}`;
const log = (...args: unknown[]) => console.error('[bench]', ...args);

// Jobs as ix writes them: a UUIDv7 job id from the submission time, 50 clients of which the first
// submits half of everything, 90% done, 8% error, 2% cancelled.
const SEED_SQL = `
  INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, created_at, input, status, attempts, started_at,
    finished_at, cancel_requested_at, response)
  SELECT
    (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
      || substr(h, 4, 15))::uuid,
    substr(h, 16, 16),
    CASE WHEN i % 2 = 0 THEN 'client-0' ELSE 'client-' || (i % 49 + 1) END,
    'req-' || i, t, jsonb_build_object('i', i, 'doc', 's3://bucket/doc.pdf'),
    s, 0, t + interval '20 ms', t + interval '120 ms', CASE WHEN s = 'cancelled' THEN t END,
    jsonb_build_object('ix_id', substr(h, 16, 16),
      'error', CASE s WHEN 'error' THEN 'the model crashed' WHEN 'cancelled' THEN 'cancelled' END,
      'result', CASE WHEN s = 'done' THEN jsonb_build_object('pages', 3) END)
  FROM (
    SELECT i, md5(i::text) AS h,
      CASE WHEN i > $1::int - $3::int THEN now() - random() * interval '1 hour'
        ELSE now() - random() * make_interval(days => $2::int) END AS t,
      CASE WHEN i % 50 = 7 THEN 'cancelled' WHEN i % 25 IN (3, 11) THEN 'error' ELSE 'done' END AS s
    FROM generate_series(1, $1::int) i
  ) g
  -- In submission order, as ix inserts them: the last hour's jobs are the table's last pages.
  ORDER BY t`;

// The live part: 1,000 queued, 50 running on 10 workers, 500 callbacks to deliver.
const LIVE_SQL = `
  WITH pending AS (
    INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input)
    SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
        || substr(h, 4, 15))::uuid, substr(h, 16, 16), 'client-' || (i % 5), 'live-' || i, '{}'::jsonb
    FROM (SELECT i, md5('live' || i) AS h FROM generate_series(1, 1050) i) g
    RETURNING job_id, client_id, request_id
  ), queued AS (
    INSERT INTO ix_job_queue (job_id, client_id) SELECT job_id, client_id FROM pending
    WHERE substr(request_id, 6)::int <= 1000
  )
  INSERT INTO ix_job_leases (worker_id, job_ids, attempts, claim_epochs)
  SELECT md5('worker' || (substr(request_id, 6)::int % 10))::uuid, array_agg(job_id), array_agg(0), array_agg(0)
  FROM pending WHERE substr(request_id, 6)::int > 1000 GROUP BY 1`;

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50: r(at(50)), p95: r(at(95)), max: r(s.at(-1) ?? 0) };
}

async function main() {
  await recreateDatabase(DB);
  const pool = createPool(url, { max: 4 });
  await migrateUp(pool);
  let t = performance.now();
  await pool.query(SEED_SQL, [ROWS, DAYS, LAST_HOUR]);
  await pool.query(LIVE_SQL);
  await pool.query(`UPDATE ix_jobs SET status = 'running', started_at = now(), worker_id = l.worker_id
    FROM ix_job_leases l CROSS JOIN unnest(l.job_ids) AS e(job_id) WHERE e.job_id = ix_jobs.job_id`);
  await pool.query(`INSERT INTO ix_workers (worker_id, hostname, pid)
    SELECT md5('worker' || i)::uuid, 'bench', i FROM generate_series(0, 9) i`);
  await pool.query(`INSERT INTO ix_callback_queue (job_id, attempt)
    SELECT job_id, (row_number() OVER ()) % 3 FROM ix_jobs WHERE status = 'error' LIMIT 500`);
  await pool.query('VACUUM ANALYZE');
  log(`seeded ${ROWS} jobs in ${Math.round(performance.now() - t)} ms`);
  const { rows: sizes } = await pool.query<{ jobs: string; last_hour: number }>(
    `SELECT pg_size_pretty(pg_total_relation_size('ix_jobs')) AS jobs,
       (SELECT count(*)::int FROM ix_jobs WHERE created_at > now() - interval '1 hour') AS last_hour`,
  );

  const config = loadConfig({ IX_HOST: '127.0.0.1', IX_PORT: '0' });
  // No gauge cache: every scrape reads the database, the cost a scrape pays at most once a second.
  const metrics = new Metrics({
    db: pool,
    heartbeatTimeoutSeconds: 30,
    clientLabels: false,
    gaugeCacheMs: 0,
  });
  const api = await startApi({
    pool,
    connectionString: url,
    config,
    logger: pino({ level: 'warn' }),
    metrics,
  });
  const timed = async (path: string) => {
    const times: number[] = [];
    for (let i = 0; i < REQUESTS + 10; i++) {
      t = performance.now();
      const response = await fetch(`${api.address}${path}`);
      await response.text();
      if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
      if (i >= 10) times.push(performance.now() - t);
    }
    return stats(times);
  };
  const ms: Record<string, ReturnType<typeof stats>> = {};
  ms.metrics = await timed('/metrics');
  ms.overview = await timed('/admin/overview');
  const from = new Date(Date.now() - 2 * 86_400_000).toISOString();
  const to = new Date(Date.now() - 86_400_000).toISOString();
  const searches: Record<string, string> = {
    newest: '',
    status_pending: 'status=pending',
    status_running: 'status=running',
    status_error: 'status=error',
    status_cancelled: 'status=cancelled',
    big_client: 'client_id=client-0',
    small_client: 'client_id=client-7',
    small_client_error: 'client_id=client-7&status=error',
    request_id: 'request_id=req-777777',
    request_id_of_client: 'client_id=client-0&request_id=req-777778',
    ix_id_prefix: 'ix_id=4f2a',
    time_range: `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
  };
  for (const [name, query] of Object.entries(searches))
    ms[`search_${name}`] = await timed(`/admin/jobs?${query}`);
  await api.close();
  // The statements alone, without HTTP: what the database costs each.
  const direct = async (work: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < REQUESTS + 10; i++) {
      t = performance.now();
      await work();
      if (i >= 10) times.push(performance.now() - t);
    }
    return stats(times);
  };
  ms.statements_live_counts = await direct(() => liveCounts(pool, 30));
  ms.statements_last_hour = await direct(() => recentFigures(pool));

  // The plans, for docs/design.md.
  const plan = async (name: string, text: string, values: unknown[]) => {
    const { rows } = await pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${text}`,
      values,
    );
    log(`--- ${name}\n${rows.map((r) => r['QUERY PLAN']).join('\n')}`);
  };
  const filters: Record<string, Parameters<typeof jobSearchQuery>[0]> = {
    newest: { limit: 50 },
    status_pending: { status: 'pending', limit: 50 },
    status_error: { status: 'error', limit: 50 },
    big_client: { clientId: 'client-0', limit: 50 },
    small_client: { clientId: 'client-7', limit: 50 },
    request_id: { requestId: 'req-777777', limit: 50 },
    ix_id_prefix: { ixIdPrefix: '4f2a', limit: 50 },
  };
  for (const [name, filter] of Object.entries(filters)) {
    const { text, values } = jobSearchQuery(filter);
    await plan(`search ${name}`, text, values);
  }
  await pool.end();
  console.log(
    JSON.stringify({
      rows: ROWS,
      days: DAYS,
      jobs_in_last_hour: sizes[0]!.last_hour,
      ix_jobs_size: sizes[0]!.jobs,
      requests_each: REQUESTS,
      ms,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
