/**
 * Submit throughput of the API over HTTP: `npm run bench:api`.
 * Creates (and afterwards drops) its own database on IX_POSTGRES_URL's server, starts the API in
 * a child process so the load generator does not share its event loop, then runs autocannon:
 * 10 keep-alive connections, a unique request id per request, 10 s after a 2 s warm-up.
 * Then 5 s of the same submits straight into the store (the PostgreSQL ceiling right now) and
 * the CPU time per submit of the API process, of PostgreSQL and of the load generator, which
 * share the machine. Prints one JSON line.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { startApi } from '../src/api/index.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { createPool, insertPending, migrateUp } from '../src/store/index.js';
import { ownCpuMicros, postgresCpuMicros } from './cpu.js';

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

/** The child: the API as `ix api` would run it, with keys so authentication is measured too. */
async function serve(): Promise<void> {
  const config = loadConfig({
    IX_POSTGRES_URL: databaseUrl().toString(),
    IX_PORT: '0',
    IX_LOG_LEVEL: 'warn',
    IX_API_KEYS: `${CLIENT}=${KEY}`,
  });
  const pool = createPool(config.postgresUrl!, { max: config.dbPoolSize, applicationName: 'ix bench api' });
  const api = await startApi({ pool, config, logger: createLogger(config.logLevel) });
  process.once('SIGTERM', async () => {
    await api.close();
    await pool.end();
    process.exit(0);
  });
  // The parent asks for this process's CPU time around the measured run, so the API's own cost
  // per submit can be told apart from PostgreSQL's and the load generator's.
  process.on('message', () => process.send?.({ cpu: process.cpuUsage() }));
  process.send?.({ address: api.address });
}

/** IX_BENCH_CPU_PROFILE=dir writes a V8 CPU profile of the API process there, for reading with DevTools. */
function profileFlags(): string[] {
  const dir = process.env.IX_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

async function childCpuMicros(child: ChildProcess): Promise<number> {
  child.send('cpu');
  const [message] = (await once(child, 'message')) as [{ cpu: NodeJS.CpuUsage }];
  return message.cpu.user + message.cpu.system;
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
    child = fork(fileURLToPath(import.meta.url), ['serve'], {
      execArgv: ['--import', 'tsx', ...profileFlags()],
    });
    const [message] = (await once(child, 'message')) as [{ address: string }];
    await load(message.address, WARMUP_S, 'warmup');
    const cpuBefore = await childCpuMicros(child);
    const postgresBefore = await postgresCpuMicros();
    const loadBefore = ownCpuMicros();
    const result = await load(message.address, DURATION_S, 'run');
    const loadCpuMicros = ownCpuMicros() - loadBefore;
    const postgresAfter = await postgresCpuMicros();
    const apiCpuMicros = (await childCpuMicros(child)) - cpuBefore;
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
        api_cpu_us_per_submit: perSubmit(apiCpuMicros),
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

if (process.argv[2] === 'serve') await serve();
else await main();
