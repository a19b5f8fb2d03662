/**
 * A benchmark's own database on IX_POSTGRES_URL's server (or `fallback`), dropped and created
 * afresh, and the built `ix api` it starts against it: shared by bench/api.ts and bench/wait.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** The built CLI (`npm run build` first): the benchmarks run ix as users do. */
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export function databaseUrl(fallback: string): URL {
  return new URL(process.env.IX_POSTGRES_URL ?? fallback);
}

/** Runs `sql` on the server's `postgres` database (CREATE and DROP DATABASE cannot run in their own). */
export async function onServer(database: URL, sql: string): Promise<void> {
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

/** The database's name, refused unless it is a plain identifier: it is written into DDL. */
export function databaseName(database: URL): string {
  const name = database.pathname.slice(1);
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bench: refusing odd database name "${name}"`);
  return name;
}

/** Node flags that profile the API when IX_BENCH_CPU_PROFILE names a directory. */
function profileFlags(): string[] {
  const dir = process.env.IX_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export interface IxApi {
  child: ChildProcess;
  pid: number;
  address: string;
}

/**
 * The API as users run it: the built `ix api` in a process of its own (so the load generator does
 * not share its event loop), on `database`, with `env` added (keys, settings). Resolves with the
 * address it prints once listening; its warnings go on being read and shown, so a full pipe can
 * never stall it.
 */
export async function startIxApi(database: URL, env: Record<string, string>): Promise<IxApi> {
  const child = spawn(process.execPath, [...profileFlags(), CLI, 'api'], {
    env: {
      PATH: process.env.PATH,
      IX_POSTGRES_URL: database.toString(),
      IX_PORT: '0',
      IX_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr = child.stderr!;
  stderr.setEncoding('utf8');
  let text = '';
  const address = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: string) => {
      text += chunk;
      const found = /ix listening on (http:\/\/\S+)/.exec(text)?.[1];
      if (found) {
        stderr.off('data', onData);
        resolve(found);
      }
    };
    stderr.on('data', onData);
    child.once('exit', () => reject(new Error(`ix api exited before listening:\n${text}`)));
  });
  stderr.on('data', (chunk: string) => process.stderr.write(`[ix api] ${chunk}`));
  return { child, pid: child.pid!, address };
}
