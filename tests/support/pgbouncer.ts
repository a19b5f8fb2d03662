/**
 * A real PgBouncer (Debian's, /usr/sbin/pgbouncer, which .ci/run installs) in transaction pooling
 * mode in front of the test server, on a free port, with its config and userlist in a temp
 * directory. Never skipped: without the binary the test fails, saying how to install it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface PgBouncer {
  /** `url` with PgBouncer's host and port instead of the server's. */
  urlFor(url: string): string;
  /** What PgBouncer has logged so far. */
  log(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const quoted = (text: string) => `"${text.replaceAll('"', '""')}"`;

/** Starts PgBouncer in front of `serverUrl`'s server, `poolSize` server connections per database. */
export async function startPgBouncer(serverUrl: string, poolSize: number): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER))
    throw new Error(`${PGBOUNCER} is missing: apt-get install -y pgbouncer (.ci/run does)`);
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ix-pgbouncer-'));
  // PgBouncer refuses to run as root ("PgBouncer should not run as root"); as root it is started
  // with -u postgres, which must be able to read its files.
  chmodSync(dir, 0o755);
  const auth = join(dir, 'userlist.txt');
  writeFileSync(auth, `${quoted(user)} ${quoted(password)}\n`, { mode: 0o644 });
  const ini = join(dir, 'pgbouncer.ini');
  const target = [`host=${server.hostname}`, `port=${server.port || 5432}`, `user=${user}`];
  if (password) target.push(`password=${password}`);
  writeFileSync(
    ini,
    [
      '[databases]',
      `* = ${target.join(' ')}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${auth}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      // Nothing else: ix sends no startup parameter behind a pooler but application_name,
      // which PgBouncer keeps per client itself.
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(PGBOUNCER, [...(asRoot ? ['-u', 'postgres'] : []), ini], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const urlFor = (url: string) => {
    const through = new URL(url);
    through.host = `127.0.0.1:${port}`;
    return through.toString();
  };
  const bouncer: PgBouncer = {
    urlFor,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new pg.Client({ connectionString: urlFor(serverUrl), connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return bouncer;
    } catch (error) {
      await client.end().catch(() => {});
      if (child.exitCode !== null || Date.now() > deadline) {
        await bouncer.stop();
        throw new Error(`PgBouncer did not start: ${(error as Error).message}\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
