/**
 * Submit throughput of the API over HTTP: `npm run bench:api`.
 * Creates (and afterwards drops) its own database on IX_POSTGRES_URL's server, starts the built
 * `ix api` (`npm run build` first; the npm script does) in a process of its own, then runs autocannon:
 * 10 keep-alive connections, a unique request id per request, 10 s after a 2 s warm-up.
 * Then 5 s of the same submits straight into the store (the PostgreSQL ceiling right now) and
 * the CPU time per submit of the API process, of PostgreSQL and of the load generator, which
 * share the machine. Prints one JSON line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { createPool, insertPending, migrateUp } from '../src/store/index.js';
import { ownCpuMicros, postgresCpuMicros, processCpuMicros } from './cpu.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/ix_bench_api';
const CONNECTIONS = 10;
const DURATION_S = Number(process.env.IX_BENCH_DURATION_SECONDS ?? 10);
const WARMUP_S = 2;
const STORE_ONLY_S = 5;
const CLIENT = 'bench';
const KEY = 'bench-key-0123456789abcdef';

function databaseUrl(): URL {
  return new URL(process.env.IX_POSTGRES_URL ?? DEFAULT_URL);
}

async function onServer(database: URL, sql: string): Promise<void> {
  const admin = new URL(database);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function databaseName(database: URL): string {
  const name = database.pathname.slice(1);
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bench: refusing odd database name "${name}"`);
  return name;
}

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/**
 * The API as users run it: the built `ix api` in a process of its own (so the load generator
 * does not share its event loop), with keys so authentication is measured too. Resolves with
 * the address it prints once listening.
 */
async function startIxApi(database: URL): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [...profileFlags(), CLI, 'api'], {
    env: {
      PATH: process.env.PATH,
      IX_POSTGRES_URL: database.toString(),
      IX_PORT: '0',
      IX_LOG_LEVEL: 'warn',
      IX_API_KEYS: `${CLIENT}=${KEY}`,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  for await (const chunk of child.stderr!) {
    stderr += chunk;
    const address = /ix listening on (http:\/\/\S+)/.exec(stderr)?.[1];
    if (address) return { child, address };
  }
  throw new Error(`ix api exited before listening:\n${stderr}`);
}

/** IX_BENCH_CPU_PROFILE=dir writes a V8 CPU profile of the API process there, for reading with DevTools. */
function profileFlags(): string[] {
  const dir = process.env.IX_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

async function load(address: string, seconds: number, prefix: string) {
  let sequence = 0;
  return autocannon({
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
}

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
          await insertPending(pool, request, null);
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
  const database = databaseUrl();
  const name = databaseName(database);
  await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onServer(database, `CREATE DATABASE ${name}`);
  const pool = createPool(database.toString(), { max: 2 });
  let child: ChildProcess | undefined;
  try {
    await migrateUp(pool);
    const api = await startIxApi(database);
    child = api.child;
    const apiCpu = () => processCpuMicros(api.child.pid!);
    await load(api.address, WARMUP_S, 'warmup');
    const cpuBefore = await apiCpu();
    const postgresBefore = await postgresCpuMicros();
    const loadBefore = ownCpuMicros();
    const result = await load(api.address, DURATION_S, 'run');
    const loadCpuMicros = ownCpuMicros() - loadBefore;
    const postgresAfter = await postgresCpuMicros();
    const cpuAfter = await apiCpu();
    const apiCpuMicros = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
    const storeOnlyPerSecond = await storeOnly(database, STORE_ONLY_S);
    const created = result.statusCodeStats['201']?.count ?? 0;
    const perSubmit = (micros: number) => (created === 0 ? null : Math.round(micros / created));
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ix_jobs WHERE request_id LIKE 'run-%'`,
    );
    console.log(
      JSON.stringify({
        bench: 'api.submit',
        connections: CONNECTIONS,
        duration_s: result.duration,
        submits_per_s: Math.round(created / result.duration),
        latency_p50_ms: result.latency.p50,
        latency_p99_ms: result.latency.p99,
        latency_max_ms: result.latency.max,
        store_only_inserts_per_s: storeOnlyPerSecond,
        api_cpu_us_per_submit: apiCpuMicros === null ? null : perSubmit(apiCpuMicros),
        postgres_cpu_us_per_submit:
          postgresBefore === null || postgresAfter === null
            ? null
            : perSubmit(postgresAfter - postgresBefore),
        load_generator_cpu_us_per_submit: perSubmit(loadCpuMicros),
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
