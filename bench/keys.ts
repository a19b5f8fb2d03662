/**
 * WAL per submitted job beside a large table: PREFILL finished jobs (their ix_ids drawn as this
 * tree draws them), a CHECKPOINT, then N jobs submitted through jobInsertMany in batches of 1,000.
 * After a checkpoint the first change to each index page writes the whole page to the WAL, so an
 * index that takes its keys at random writes a page per job once the table is large;
 * `bench:worker` starts from an empty table and cannot show it. Prints one JSON line.
 * Run: npm run bench:keys
 * Env: PREFILL (2000000), N (20000), PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres),
 *      IX_BENCH_DB (bench_keys, recreated).
 */

import { newIxId } from '../src/store/ids.js';
import { createPool, jobInsertMany, migrateUp } from '../src/store/index.js';
import { env, recreateDatabase, serverUrl } from './env.js';

const PREFILL = Number(env('PREFILL', '2000000'));
const N = Number(env('N', '20000'));
const DB = env('IX_BENCH_DB', 'bench_keys');
const CHUNK = 100_000;

async function main() {
  await recreateDatabase(DB);
  const pool = createPool(`${serverUrl()}/${DB}`, { max: 2 });
  try {
    await migrateUp(pool);
    for (let done = 0; done < PREFILL; done += CHUNK) {
      const ixIds = Array.from({ length: Math.min(CHUNK, PREFILL - done) }, () => newIxId());
      await pool.query(
        `INSERT INTO ix_jobs (job_id, ix_id, client_id, request_id, input, status, started_at, finished_at, response)
         SELECT gen_random_uuid(), x, 'acme', 'old-' || ($2::bigint + n), '{}', 'done', now(), now(),
           jsonb_build_object('ix_id', x, 'error', null, 'result', null)
         FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n)`,
        [ixIds, done],
      );
    }
    await pool.query('VACUUM ANALYZE ix_jobs');
    await pool.query('CHECKPOINT');
    const lsn = async () =>
      (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
    const from = await lsn();
    for (let i = 0; i < N; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
        request: {
          ix_client_id: 'bench',
          request_id: `new-${i + k}`,
          input: { k: i + k, pad: 'x'.repeat(200) },
        },
        callbackUrl: null,
      }));
      await jobInsertMany(pool, batch);
    }
    const { rows } = await pool.query<{ bytes: string }>(
      'SELECT pg_current_wal_lsn() - $1::pg_lsn AS bytes',
      [from],
    );
    console.log(
      JSON.stringify({
        bench: 'keys',
        prefill: PREFILL,
        jobs: N,
        wal_bytes_per_job: Math.round(Number(rows[0]!.bytes) / N),
      }),
    );
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
