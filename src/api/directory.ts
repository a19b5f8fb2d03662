/**
 * The client directory: each API process's copy of `ix_clients` and the digests of their keys,
 * which is what authentication and the submit limits read, with no query per request.
 * - Loaded whole at start-up (a failure to load stops the start, as a bad setting would).
 * - Reloaded whole at once when told of a change on CLIENTS_CHANNEL (every store function that
 *   changes a client sends it in its transaction, so the reload sees the change), after every
 *   (re)connect of the LISTEN connection (changes made while it was away were told to nobody),
 *   and every IX_CLIENTS_REFRESH_SECONDS in case a notification was lost. The LISTEN connection
 *   is the job watcher's: an API process holds one, whatever it listens for.
 * - A database that cannot be read at start-up does not stop the API (as for the job watcher):
 *   the directory is loaded once it can be, and until then a key that is not one of the
 *   variables answers 503. Once loaded, an outage keeps the last snapshot.
 * A reload replaces both maps at once, so a request sees one snapshot or the next, never a mix.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { type Config, ConfigError } from '../config.js';
import { Loop } from '../loop.js';
import type { ClientRecord } from '../store/index.js';
import { clientsRead, withClientWithin } from '../store/index.js';

/** What applies to one client: its own settings where it has them, else the server defaults. */
export interface EffectiveLimits {
  weight: number;
  maxRunning: number | null;
  maxPending: number | null;
  /** Submits a second to this API process; null: no limit. */
  rate: number | null;
  /** The token bucket's size under `rate`. */
  burst: number;
}

/** `record`'s settings over `defaults` (IX_CLIENT_MAX_RUNNING, …); a client not in the table has defaults only. */
export function effectiveLimits(
  record: ClientRecord | undefined,
  defaults: Config['clients'],
): EffectiveLimits {
  const rate = record?.ratePerSecond ?? defaults.rate;
  return {
    weight: record?.weight ?? 1,
    maxRunning: record?.maxRunning ?? defaults.maxRunning,
    maxPending: record?.maxPending ?? defaults.maxPending,
    rate,
    burst: defaults.rateBurst ?? Math.max(1, rate ?? 1),
  };
}

export interface KeyHolder {
  clientId: string;
  disabled: boolean;
}

/** How long close() waits for a reload in flight: one against a silent server is abandoned. */
const CLOSE_WAIT_MS = 200;

export interface DirectoryOptions {
  pool: pg.Pool;
  /** Says when clients changed: the job watcher's LISTEN connection (JobWatcher.watchClients). */
  changes: { watchClients(listener: () => void): () => void };
  config: Config;
  logger: Logger;
}

function conflictError(clientId: string): ConfigError {
  return new ConfigError(
    'IX_API_KEYS',
    `client "${clientId}" is defined both in IX_API_KEYS and in the ix_clients table (ix clients list); keep it in one place only`,
  );
}

export class ClientDirectory {
  private clients = new Map<string, ClientRecord>();
  /** Key digest (hex) → its client. */
  private holders = new Map<string, KeyHolder>();
  private readonly loop: Loop;
  private unwatch: () => void = () => {};
  private started = false;
  /** The loop's first pass follows start()'s own read: it only waits. */
  private justStarted = true;
  /** Whether the table has been read at least once. */
  loaded = false;

  constructor(private readonly options: DirectoryOptions) {
    const { logger, config } = options;
    this.loop = new Loop({
      name: 'client directory reload',
      logger,
      idleMs: config.clients.refreshSeconds * 1000,
      pass: async () => {
        if (this.justStarted) {
          this.justStarted = false;
          // Read just now, or not readable: then try again soon rather than at the interval.
          return this.loaded
            ? config.clients.refreshSeconds * 1000
            : Math.min(5, config.clients.refreshSeconds) * 1000;
        }
        await this.reload();
        return false;
      },
    });
  }

  /**
   * Loads the directory (throws when it cannot, or when a client of IX_API_KEYS is in the table
   * too), then keeps it current in the background.
   */
  async start(): Promise<void> {
    try {
      await this.reload(true);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      this.options.logger.warn(
        { err: error },
        'could not read the clients table; until it is read, only keys of IX_API_KEYS and IX_ADMIN_KEYS are accepted',
      );
    }
    this.started = true;
    this.unwatch = this.options.changes.watchClients(() => this.loop.wake());
    this.loop.start();
  }

  async close(): Promise<void> {
    this.unwatch();
    const stopped = this.loop.stop();
    // A reload waiting on an unresponsive server ends within the deadline on its own; the API's
    // close need not wait for it (it only reads, and its result is then dropped).
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS);
    });
    await Promise.race([stopped, waited]);
    clearTimeout(timer);
  }

  /** Reads the table again. At start-up a client in IX_API_KEYS too is refused; later, ignored. */
  async reload(strict = false): Promise<void> {
    const { pool, config } = this.options;
    // Bounded as every statement of the API is: a silent server must not hold a reload forever.
    const read = withClientWithin(pool, config.api.deadlineSeconds * 1000, (db) => clientsRead(db));
    const snapshot = await read.catch((error: unknown) => {
      // A schema from before clients were data holds none: nothing to load, nothing to refuse.
      if ((error as { code?: string }).code === '42P01') return { clients: [], keys: [] };
      throw error;
    });
    const staticIds = this.options.config.api.apiKeys;
    const clients = new Map<string, ClientRecord>();
    for (const record of snapshot.clients) {
      if (staticIds.has(record.clientId)) {
        if (strict) throw conflictError(record.clientId);
        // Added since start-up by an `ix clients` that did not see this process's IX_API_KEYS.
        this.options.logger.error(
          { client_id: record.clientId },
          `${conflictError(record.clientId).message}; its entry in the table is ignored`,
        );
        continue;
      }
      clients.set(record.clientId, record);
    }
    const holders = new Map<string, KeyHolder>();
    for (const { digest, clientId } of snapshot.keys) {
      const record = clients.get(clientId);
      if (record) holders.set(digest.toString('hex'), { clientId, disabled: record.disabled });
    }
    this.clients = clients;
    this.holders = holders;
    this.loaded = true;
    if (this.started) this.options.logger.debug({ clients: clients.size }, 'client directory reloaded');
  }

  /** The client holding the key whose SHA-256 is `digest`, or undefined. */
  holderOf(digest: Buffer): KeyHolder | undefined {
    return this.holders.get(digest.toString('hex'));
  }

  /** Whether the table holds any key (of an enabled client or not): then access is keyed. */
  get hasKeys(): boolean {
    return this.holders.size > 0;
  }

  /** What applies to `clientId`, whether it is in the table or not. */
  limits(clientId: string): EffectiveLimits {
    return effectiveLimits(this.clients.get(clientId), this.options.config.clients);
  }
}
