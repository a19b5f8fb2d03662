/**
 * What a statement costs named (prepared once per connection) against unnamed (parsed and planned
 * on every call, as behind a transaction pooler: IX_DB_PREPARED_STATEMENTS=false), and through a
 * pooler. The worker's claim on an empty queue, so the cost is its plan, not its rows; and a job
 * read by id, the API's most frequent statement. Blocks of each variant alternate, ROUNDS times,
 * on one connection each; prints one JSON line of median µs per call.
 * Run: node --import tsx bench/statements.ts
 * Env: CALLS (500 a block), ROUNDS (10), PGHOST/PGPORT/PGUSER, IX_BENCH_DB (bench_ix_pgb; created
 *      and migrated when missing, its queue emptied), IX_BENCH_POOLER_URL (unset: no pooler variant).
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPool, jobClaimMany, jobGet, migrateUp } from '../src/store/index.js';
import { env, serverUrl } from './env.js';

const CALLS = Number(env('CALLS', '500'));
const ROUNDS = Number(env('ROUNDS', '10'));
const DB = env('IX_BENCH_DB', 'bench_ix_pgb');
const server = serverUrl();
const url = `${server}/${DB}`;
const poolerServer = env('IX_BENCH_POOLER_URL', '');

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10;
};

async function main() {
  const admin = new pg.Client({ connectionString: `${server}/postgres` });
  await admin.connect();
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB]);
  if (!rowCount) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(DB)}`);
  await admin.end();
  const direct = createPool(url, { max: 1 });
  await migrateUp(direct);
  await direct.query('TRUNCATE ix_job_queue, ix_job_leases');
  const { rows } = await direct.query<{ job_id: string }>('SELECT job_id FROM ix_jobs LIMIT 1');
  const jobId = rows[0]?.job_id ?? '00000000-0000-7000-8000-000000000000';
  await direct.end();

  const variants: Record<string, pg.Pool> = {
    named: createPool(url, { max: 1 }),
    unnamed: createPool(url, { max: 1, preparedStatements: false }),
    ...(poolerServer
      ? {
          unnamed_via_pooler: createPool(`${poolerServer}/${DB}`, {
            max: 1,
            transactionPooler: true,
            preparedStatements: false,
          }),
        }
      : {}),
  };
  const statements = {
    claim: (pool: pg.Pool) => jobClaimMany(pool, { limit: 50, workerId: null, startNow: 50 }),
    get: (pool: pg.Pool) => jobGet(pool, jobId),
  };
  const samples: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [statement, call] of Object.entries(statements)) {
      for (const [variant, pool] of Object.entries(variants)) {
        const started = performance.now();
        for (let i = 0; i < CALLS; i++) await call(pool);
        const key = `${statement}_${variant}_us`;
        samples[key] ??= [];
        // The first round warms each connection (and prepares the named statements): not counted.
        if (round > 0) samples[key].push(((performance.now() - started) * 1000) / CALLS);
      }
    }
  }
  await Promise.all(Object.values(variants).map((pool) => pool.end()));
  const result: Record<string, number | number[]> = { calls: CALLS, rounds: ROUNDS - 1 };
  for (const [key, xs] of Object.entries(samples)) result[key] = median(xs);
  console.log(JSON.stringify(result));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
