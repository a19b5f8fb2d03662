/**
 * Submit throughput of the API over HTTP: `npm run bench:api`.
 * Creates (and afterwards drops) its own database on IX_POSTGRES_URL's server, starts the API in
 * a child process so the load generator does not share its event loop, then runs autocannon:
 * 10 keep-alive connections, a unique request id per request, 10 s after a 2 s warm-up.
 * Prints one JSON line.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { startApi } from '../src/api/index.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { createPool, migrateUp } from '../src/store/index.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/ix_bench_api';
const CONNECTIONS = 10;
const DURATION_S = Number(process.env.IX_BENCH_DURATION_SECONDS ?? 10);
const WARMUP_S = 2;
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
  process.send?.({ address: api.address });
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

async function main(): Promise<void> {
  const database = databaseUrl();
  const name = databaseName(database);
  await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onServer(database, `CREATE DATABASE ${name}`);
  const pool = createPool(database.toString(), { max: 2 });
  let child: ChildProcess | undefined;
  try {
    await migrateUp(pool);
    child = fork(fileURLToPath(import.meta.url), ['serve'], { execArgv: ['--import', 'tsx'] });
    const [message] = (await once(child, 'message')) as [{ address: string }];
    await load(message.address, WARMUP_S, 'warmup');
    const result = await load(message.address, DURATION_S, 'run');
    const created = result.statusCodeStats['201']?.count ?? 0;
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
