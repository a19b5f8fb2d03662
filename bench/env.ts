/** What every benchmark reads from its environment: a setting with its default, and the server. */
import pg from 'pg';

export const env = (name: string, fallback: string): string => process.env[name] || fallback;

/** The PostgreSQL server, from PGHOST, PGPORT and PGUSER (127.0.0.1:5432, postgres). */
export const serverUrl = (): string =>
  `postgres://${env('PGUSER', 'postgres')}@${env('PGHOST', '127.0.0.1')}:${env('PGPORT', '5432')}`;

/** Drops the benchmark's database `name` on the server and creates it afresh. */
export async function recreateDatabase(name: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bench: refusing odd database name "${name}"`);
  const admin = new pg.Client({ connectionString: `${serverUrl()}/postgres` });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
}

/**
 * ix's modules that run a worker, as `ix worker` runs them: the built dist/ (`npm run build`
 * first), with their types from src/. Under tsx, esbuild's name-keeping wraps every function the
 * worker makes per job: bench:worker processed 14,000–16,300 jobs/s so, against 19,100–19,200
 * from dist/, with 38 µs of worker CPU a job against 31–35 (bench/RESULTS.md).
 */
export async function builtIx() {
  const built = (path: string) => import(new URL(`../dist/${path}`, import.meta.url).href);
  const [api, config, store, worker] = (await Promise.all([
    built('api/index.js'),
    built('config.js'),
    built('store/index.js'),
    built('worker/index.js'),
  ])) as [
    typeof import('../src/api/index.js'),
    typeof import('../src/config.js'),
    typeof import('../src/store/index.js'),
    typeof import('../src/worker/index.js'),
  ];
  return { ...api, ...config, ...store, ...worker };
}
