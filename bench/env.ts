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
