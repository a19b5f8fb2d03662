/**
 * When PostgreSQL cannot serve: which failures mean it is unavailable (and a retry later may
 * succeed), and statements bounded in time, cancelled on the server when their caller gives up.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import type pg from 'pg';
import { failureReason } from './db.js';

/**
 * PostgreSQL cannot serve the statement now: down, unreachable, out of connections, or too slow.
 * A retry later may succeed.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Socket failures on the way to PostgreSQL. */
const UNAVAILABLE_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATE classes that blame the server, not the statement: 08 connection exception, 53
 * insufficient resources (too many connections, out of memory or disk), 57 operator intervention
 * (a statement_timeout or a cancel, an admin or crash shutdown, a server still starting), 58
 * system error (an I/O error on the server).
 */
const UNAVAILABLE_SQLSTATE_CLASSES: ReadonlySet<string> = new Set(['08', '53', '57', '58']);

/** Whether `error` says PostgreSQL could not serve the statement now, so a retry later may succeed. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  // pg's own words for a connection lost or never had carry no code.
  if (typeof code !== 'string') return typeof message === 'string' && PG_CONNECTION_FAILURES.test(message);
  return UNAVAILABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATE_CLASSES.has(code.slice(0, 2));
}

const PG_CONNECTION_FAILURES =
  /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect/i;

/** What pg's Client learns of its server process at login (BackendKeyData); @types/pg omits it. */
interface BackendKey {
  processID?: number | null;
  secretKey?: number | null;
}

/** PostgreSQL's CancelRequest: length 16, the request code 1234.5678, the process id and key. */
const CANCEL_REQUEST_CODE = 80_877_102;
const CANCEL_TIMEOUT_MS = 5_000;

/**
 * Asks the server to cancel what `client`'s server process is running, as libpq's PQcancel does:
 * a CancelRequest on a connection of its own, which needs no login and no pool slot. Best effort:
 * when the server cannot be reached there is nothing running there to cancel, and
 * statement_timeout would end it anyway.
 */
function cancelStatement(client: pg.PoolClient): void {
  const { processID, secretKey } = client as unknown as BackendKey;
  if (typeof processID !== 'number' || typeof secretKey !== 'number') return;
  const request = Buffer.alloc(16);
  request.writeInt32BE(16, 0);
  request.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  request.writeInt32BE(processID, 8);
  request.writeInt32BE(secretKey, 12);
  // A host that is a path is the directory of a Unix socket, as in libpq.
  const socket = client.host.startsWith('/')
    ? connect(join(client.host, `.s.PGSQL.${client.port}`))
    : connect(client.port, client.host);
  socket.setTimeout(CANCEL_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => {});
  socket.unref();
  socket.end(request);
}

/**
 * Runs `work` on a client of `pool`, and settles within `timeoutMs` whatever PostgreSQL does.
 * No connection by then, or `work` still running, fails with a DatabaseUnavailableError; a
 * running statement is then cancelled on the server, so it neither keeps waiting (for a lock, say)
 * nor commits long after its caller gave up, and its connection is closed rather than reused, so
 * that the cancel cannot reach the next caller's statement. A connection that cannot be made or is
 * lost mid-work fails the same way; any other failure of `work` is passed on as it is.
 */
export function withClientWithin<T>(
  pool: pg.Pool,
  timeoutMs: number,
  work: (db: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let client: pg.PoolClient | null = null;
    let lost: Error | null = null;
    let settled = false;
    const onError = (error: Error) => {
      lost ??= error;
    };
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      client?.off('error', onError);
    };
    const timer = setTimeout(() => {
      settle();
      if (client === null) {
        reject(new DatabaseUnavailableError(`no connection to PostgreSQL within ${timeoutMs} ms`));
        return;
      }
      cancelStatement(client);
      client.release(new Error(`abandoned after ${timeoutMs} ms`));
      reject(new DatabaseUnavailableError(`PostgreSQL did not answer within ${timeoutMs} ms`));
    }, timeoutMs);

    pool.connect().then(
      (acquired) => {
        // Too late: the caller has its answer; the connection goes back unused.
        if (settled) {
          acquired.release();
          return;
        }
        client = acquired;
        acquired.on('error', onError);
        work(acquired).then(
          (result) => {
            if (settled) return;
            settle();
            acquired.release(lost ?? undefined);
            resolve(result);
          },
          (error: unknown) => {
            if (settled) return;
            settle();
            acquired.release(lost ?? undefined);
            reject(
              lost
                ? new DatabaseUnavailableError(`lost the connection to PostgreSQL (${failureReason(lost)})`, {
                    cause: error,
                  })
                : error,
            );
          },
        );
      },
      (error: unknown) => {
        if (settled) return;
        settle();
        reject(
          new DatabaseUnavailableError(`cannot connect to PostgreSQL (${failureReason(error)})`, {
            cause: error,
          }),
        );
      },
    );
  });
}

/**
 * Whether a failed statement may succeed if simply tried again: PostgreSQL was unavailable, or
 * the statement lost a race (40: serialization failure, deadlock; 55P03: lock not available).
 * Anything else (bad data, a violated constraint) fails again the same way.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('40') || code === '55P03');
}
