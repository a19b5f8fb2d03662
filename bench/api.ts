/**
 * Submit throughput of the API over HTTP: `npm run bench:api`.
 * Creates (and afterwards drops) its own database on IX_POSTGRES_URL's server, starts the built
 * `ix api` (the npm script builds first) in a process of its own, then loads it: 10 keep-alive
 * connections, a unique request id per request, 10 s after a 2 s warm-up, with autocannon, or
 * with wrk when IX_BENCH_LOAD=wrk. Then 5 s of the same submits straight into the store (the
 * PostgreSQL ceiling right now), and the CPU time per submit of the API process, of PostgreSQL
 * and of the load generator, which share the machine's cores. Prints one JSON line.
 * IX_BENCH_TOMBSTONES=n first fills ix_job_tombstones with n pruned keys of the same client, so
 * each submit's probe of them (src/store/jobs/insert.ts) is measured on a table of that size.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createPool, jobInsertMany, migrateUp } from '../src/store/index.js';
import { clusterCpuMicros, exitedChildrenCpuMicros, ownCpuMicros, processCpuMicros } from './cpu.js';
import { databaseName, databaseUrl, onServer, startIxApi } from './ix-process.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/ix_bench_api';
const CONNECTIONS = 10;
const DURATION_S = Number(process.env.IX_BENCH_DURATION_SECONDS ?? 10);
const WARMUP_S = 2;
const STORE_ONLY_S = 5;
const TOMBSTONES = Number(process.env.IX_BENCH_TOMBSTONES ?? 0);
const CLIENT = 'bench';
const KEY = 'bench-key-0123456789abcdef';

/** IX_BENCH_CPU_PROFILE=dir writes a V8 CPU profile of the API process there, for reading with DevTools. */
interface LoadResult {
  created: number;
  durationS: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** The load generator's own CPU time over the run. */
  cpuMicros: number | null;
}

/** autocannon in this process: the default load generator. */
async function autocannonLoad(address: string, seconds: number, prefix: string): Promise<LoadResult> {
  let sequence = 0;
  const before = ownCpuMicros();
  const result = await autocannon({
    url: address,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/jobs',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        setupRequest: (request) => {
          sequence += 1;
          return {
            ...request,
            body: JSON.stringify({
              request: {
                ix_client_id: CLIENT,
                request_id: `${prefix}-${sequence}`,
                input: { document: `s3://bench/doc-${sequence}.pdf`, pages: [1, 2, 3] },
              },
              callback_url: null,
            }),
          };
        },
      },
    ],
  });
  return {
    created: result.statusCodeStats['201']?.count ?? 0,
    durationS: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    cpuMicros: ownCpuMicros() - before,
  };
}

const WRK_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function wrkMs(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  if (!match?.[1] || !match[2]) throw new Error(`bench: wrk printed no ${pattern}:\n${output}`);
  return Number(match[1]) * (WRK_UNITS_MS[match[2]] ?? Number.NaN);
}

/**
 * wrk (C; `apt-get install wrk`), one thread, the same 10 connections and request shape: it
 * spends ~40 µs of CPU a request where autocannon spends ~150, on the two cores the API and
 * PostgreSQL share. Every 2xx counts as created: request ids are unique, and rows_written
 * checks it.
 */
async function wrkLoad(address: string, seconds: number, prefix: string): Promise<LoadResult> {
  const script = fileURLToPath(new URL('./wrk-submit.lua', import.meta.url));
  const before = await exitedChildrenCpuMicros();
  const wrk = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', script, address], {
    env: { PATH: process.env.PATH, IX_BENCH_KEY: KEY, IX_BENCH_PREFIX: prefix },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  wrk.stdout.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const [code] = (await once(wrk, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`bench: wrk exited with ${code}:\n${output}`);
  const after = await exitedChildrenCpuMicros();
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(output);
  if (!total?.[1] || !total[2] || !total[3]) throw new Error(`bench: cannot read wrk's output:\n${output}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    created: Number(total[1]) - non2xx,
    durationS: (Number(total[2]) * (WRK_UNITS_MS[total[3]] ?? Number.NaN)) / 1000,
    p50Ms: wrkMs(output, /\s50%\s+([\d.]+)(us|ms|s)/),
    p99Ms: wrkMs(output, /\s99%\s+([\d.]+)(us|ms|s)/),
    maxMs: wrkMs(output, /Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)/),
    non2xx,
    errors: socket ? Number(socket[1]) + Number(socket[2]) + Number(socket[3]) : 0,
    timeouts: socket ? Number(socket[4]) : 0,
    cpuMicros: before === null || after === null ? null : after - before,
  };
}

const LOAD_GENERATOR = process.env.IX_BENCH_LOAD ?? 'autocannon';
if (LOAD_GENERATOR !== 'autocannon' && LOAD_GENERATOR !== 'wrk') {
  throw new Error(`IX_BENCH_LOAD: expected autocannon or wrk, got "${LOAD_GENERATOR}"`);
}
const load = LOAD_GENERATOR === 'wrk' ? wrkLoad : autocannonLoad;

/**
 * The same submits straight into the store, 10 at a time, no HTTP: the ceiling PostgreSQL
 * allows on this machine at this moment, so the API's figure can be read against it.
 */
async function storeOnly(database: URL, seconds: number): Promise<number> {
  const pool = createPool(database.toString(), { max: CONNECTIONS });
  let inserted = 0;
  const deadline = Date.now() + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, lane) => {
        for (let i = 0; Date.now() < deadline; i++) {
          const request = {
            ix_client_id: CLIENT,
            request_id: `store-${lane}-${i}`,
            input: { pages: [1, 2, 3] },
          };
          await jobInsertMany(pool, [{ request, callbackUrl: null }]);
          inserted += 1;
        }
      }),
    );
  } finally {
    await pool.end();
  }
  return Math.round(inserted / seconds);
}

async function main(): Promise<void> {
  const database = databaseUrl(DEFAULT_URL);
  const name = databaseName(database);
  await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onServer(database, `CREATE DATABASE ${name}`);
  const pool = createPool(database.toString(), { max: 2 });
  let child: ChildProcess | undefined;
  try {
    await migrateUp(pool);
    if (TOMBSTONES > 0) {
      await pool.query(
        `INSERT INTO ix_job_tombstones (client_id, request_id, job_id, ix_id, status, finished_at, key_free_after)
         SELECT $1, 'gone-' || i, gen_random_uuid(), substr(md5(i::text), 1, 16), 'done', now(), now() + interval '30 days'
         FROM generate_series(1, $2::int) i`,
        [CLIENT, TOMBSTONES],
      );
      await pool.query('VACUUM ANALYZE ix_job_tombstones');
    }
    const api = await startIxApi(database, { IX_API_KEYS: `${CLIENT}=${KEY}` });
    child = api.child;
    const apiCpu = () => processCpuMicros(api.child.pid!);
    await load(api.address, WARMUP_S, 'warmup');
    const cpuBefore = await apiCpu();
    const postgresBefore = await clusterCpuMicros(pool);
    const result = await load(api.address, DURATION_S, 'run');
    const postgresAfter = await clusterCpuMicros(pool);
    const cpuAfter = await apiCpu();
    const apiCpuMicros = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
    const storeOnlyPerSecond = await storeOnly(database, STORE_ONLY_S);
    const { created } = result;
    const perSubmit = (micros: number) => (created === 0 ? null : Math.round(micros / created));
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ix_jobs WHERE request_id LIKE 'run-%'`,
    );
    console.log(
      JSON.stringify({
        bench: 'api.submit',
        load_generator: LOAD_GENERATOR,
        tombstones: TOMBSTONES,
        connections: CONNECTIONS,
        duration_s: result.durationS,
        submits_per_s: Math.round(created / result.durationS),
        latency_p50_ms: result.p50Ms,
        latency_p99_ms: result.p99Ms,
        latency_max_ms: result.maxMs,
        store_only_inserts_per_s: storeOnlyPerSecond,
        api_cpu_us_per_submit: apiCpuMicros === null ? null : perSubmit(apiCpuMicros),
        postgres_cpu_us_per_submit:
          postgresBefore === null || postgresAfter === null
            ? null
            : perSubmit(postgresAfter - postgresBefore),
        load_generator_cpu_us_per_submit: result.cpuMicros === null ? null : perSubmit(result.cpuMicros),
        created,
        rows_written: rows[0]?.n ?? 0,
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
      }),
    );
  } finally {
    if (child) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await pool.end();
    await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

await main();
