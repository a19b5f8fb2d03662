/**
 * Watching jobs change, for everyone in one process who waits on one: long-polls, event streams,
 * `ix submit --wait`. One LISTEN connection on CHANGED_CHANNEL feeds them all: a notification
 * names the jobs that changed, the watched ones among them are read again in one statement, and
 * each waiter on them is handed the job as it now is. No waiter ever queries on its own.
 * - Notifications are checked to arrive, on every (re)connect, by one sent to itself. Where they
 *   do not (a transaction pooler between ix and PostgreSQL keeps LISTEN from working), and while
 *   the connection is lost, one shared poll reads every watched job each
 *   IX_WATCH_POLL_INTERVAL_MS instead, and a log line says so.
 * - A notification can be lost (a worker dies between its commit and its NOTIFY), so while
 *   notifications work the same shared poll still runs, rarely (SAFETY_POLL_MS), as a net.
 * - The same connection carries CLIENTS_CHANNEL for the client directory (src/api/directory.ts),
 *   so an API process holds one LISTEN connection whatever it listens for.
 * - Job changes are notified only while some process has someone waiting (ix_watchers): a
 *   watcher registers before its first waiter's job is read again, renews the registration while
 *   it has waiters, and removes it when it has none.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Job } from '../contracts/index.js';
import { Loop } from '../loop.js';
import {
  CHANGED_CHANNEL,
  CLIENTS_CHANNEL,
  type Db,
  jobGetMany,
  Listener,
  notifyChangedProbe,
  watcherRegister,
  watcherRemove,
} from '../store/index.js';

/** While notifications arrive, how often every watched job is read anyway, in case one was lost. */
const SAFETY_POLL_MS = 10_000;
/** How long the notification sent to itself may take before notifications count as not arriving. */
const PROBE_TIMEOUT_MS = 2_000;
const PROBE_PREFIX = 'probe:';
/** How long a registration holds unless renewed: three safety polls, each of which renews it. */
const REGISTRATION_SECONDS = (3 * SAFETY_POLL_MS) / 1000;
/** A registration this old is renewed by the next refresh or poll. */
const RENEW_AFTER_MS = SAFETY_POLL_MS / 2;

export interface WatcherOptions {
  pool: Db;
  /** For the LISTEN connection, which lives outside the pool; null: none, the shared poll serves. */
  connectionString: string | null;
  logger: Logger;
  /** The shared poll's interval while notifications do not arrive. */
  pollIntervalMs: number;
}

export type JobListener = (job: Job) => void;

export class JobWatcher {
  private readonly listeners = new Map<string, Set<JobListener>>();
  private readonly listener: Listener;
  private readonly poll: Loop;
  /** Whether notifications arrive, as last checked (on every connect); null: not checked yet. */
  private notified: boolean | null = null;
  private probe: { token: string; arrived: () => void } | null = null;
  /** Ids named by notifications, to be read in the next refresh. */
  private changed = new Set<string>();
  private refreshing: Promise<void> | null = null;
  /** Told of every change to a client, and after every (re)connect (changes then went untold). */
  private readonly clientWatchers = new Set<() => void>();
  /** This process's row in ix_watchers, while it has waiters. */
  private readonly watcherId = randomUUID();
  /** When the registration in force was made; null: none. */
  private registeredAt: number | null = null;
  /**
   * A first waiter came after a time with none: register again rather than trust a registration
   * made before, which may have lapsed or gone meanwhile.
   */
  private registerAnew = true;
  /** The last registration failed: changes may go untold, so the shared poll runs at its pace. */
  private registrationFailed = false;
  /** Registrations and removals, one after the other, each deciding by the waiters at its turn. */
  private registration: Promise<void> = Promise.resolve();

  constructor(private readonly options: WatcherOptions) {
    this.listener = new Listener(
      options.connectionString,
      {
        [CHANGED_CHANNEL]: (payload) => this.onNotification(payload),
        [CLIENTS_CHANNEL]: () => this.tellClientWatchers(),
      },
      () => {
        this.tellClientWatchers();
        void this.checkNotifications();
      },
      options.logger,
      () => this.lost(),
    );
    this.poll = new Loop({
      name: 'watch poll',
      logger: options.logger,
      idleMs: options.pollIntervalMs,
      pass: async () => {
        await this.runOnce();
        return this.notified === true && !this.registrationFailed ? SAFETY_POLL_MS : options.pollIntervalMs;
      },
    });
  }

  /** Starts listening; resolves once the first connection attempt is over. */
  async start(): Promise<void> {
    await this.listener.start();
    this.poll.start();
  }

  async close(): Promise<void> {
    await Promise.all([this.listener.close(), this.poll.stop()]);
    this.listeners.clear();
    await this.syncRegistration();
  }

  /** How many listeners wait on jobs now. */
  get waiters(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }

  /** Whether notifications are known to arrive; false: the shared poll serves every waiter. */
  get listening(): boolean {
    return this.notified === true;
  }

  /** Calls `listener` with the job each time it is read after a change; returns the unsubscribe. */
  watch(jobId: string, listener: JobListener): () => void {
    if (this.listeners.size === 0) this.registerAnew = true;
    let set = this.listeners.get(jobId);
    if (!set) {
      set = new Set();
      this.listeners.set(jobId, set);
    }
    set.add(listener);
    // The job may have changed between the caller's read and now, its notification gone by:
    // read it once more, in the statement every watch begun meanwhile shares.
    this.changed.add(jobId);
    this.refreshing ??= this.refresh();
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  /**
   * Calls `listener` whenever a client changed (CLIENTS_CHANNEL) and after every (re)connect of
   * the LISTEN connection; returns the unsubscribe.
   */
  watchClients(listener: () => void): () => void {
    this.clientWatchers.add(listener);
    return () => this.clientWatchers.delete(listener);
  }

  private tellClientWatchers(): void {
    for (const listener of this.clientWatchers) listener();
  }

  /**
   * The shared poll: renews the registration (or removes it, with nobody waiting), then reads
   * every watched job once, in one statement, and hands each out.
   */
  async runOnce(): Promise<void> {
    await this.syncRegistration();
    await this.read([...this.listeners.keys()]);
  }

  /**
   * Registers while anyone waits, renewing a registration RENEW_AFTER_MS old; removes it once
   * nobody does. Queued behind the one in flight, so a removal never lands after a registration
   * a new waiter needed. A failure is logged: the shared poll then serves at its pace.
   */
  private syncRegistration(): Promise<void> {
    this.registration = this.registration.then(async () => {
      const waiting = this.listeners.size > 0;
      try {
        if (!waiting && this.registeredAt !== null) {
          await watcherRemove(this.options.pool, this.watcherId);
          this.registeredAt = null;
        } else if (
          waiting &&
          (this.registerAnew ||
            this.registeredAt === null ||
            Date.now() - this.registeredAt >= RENEW_AFTER_MS)
        ) {
          const at = Date.now();
          this.registerAnew = false;
          await watcherRegister(this.options.pool, this.watcherId, REGISTRATION_SECONDS);
          this.registeredAt = at;
        }
        this.registrationFailed = false;
      } catch (error) {
        const newlyFailed = waiting && !this.registrationFailed;
        this.registrationFailed = waiting;
        // Tried again at the next refresh or poll, whatever the age of an earlier registration.
        if (waiting) this.registerAnew = true;
        this.options.logger.warn({ err: error }, 'could not register as watching jobs; waiters are polled');
        // The poll may be waiting out its safety interval: from now on it goes at its pace.
        if (newlyFailed) this.poll.wake();
      }
    });
    return this.registration;
  }

  private onNotification(payload: string): void {
    if (payload.startsWith(PROBE_PREFIX)) {
      if (this.probe && payload === PROBE_PREFIX + this.probe.token) this.probe.arrived();
      return;
    }
    for (const id of payload.split(',')) if (this.listeners.has(id)) this.changed.add(id);
    if (this.changed.size > 0) this.refreshing ??= this.refresh();
  }

  /** Reads the jobs notifications named, as one statement for whatever arrived meanwhile. */
  private async refresh(): Promise<void> {
    try {
      while (this.changed.size > 0) {
        // Registered first, before every read: a change committed after this is told, one
        // committed before is read. A first waiter may join this loop while it reads for others,
        // after its registration went with the last waiter before it.
        await this.syncRegistration();
        const ids = [...this.changed].filter((id) => this.listeners.has(id));
        this.changed.clear();
        await this.read(ids);
      }
    } finally {
      this.refreshing = null;
    }
  }

  private async read(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    let jobs: Job[];
    try {
      jobs = await jobGetMany(this.options.pool, ids);
    } catch (error) {
      // The shared poll tries again; the waiters keep waiting, each within its own limit.
      this.options.logger.warn({ err: error, jobs: ids.length }, 'reading watched jobs failed');
      return;
    }
    for (const job of jobs) for (const listener of this.listeners.get(job.job_id) ?? []) listener(job);
  }

  private lost(): void {
    this.notified = false;
    this.poll.wake();
  }

  /** Sends itself a notification; until it arrives, and if it never does, the shared poll serves. */
  private async checkNotifications(): Promise<void> {
    const token = randomUUID();
    const arrived = new Promise<boolean>((resolve) => {
      this.probe = { token, arrived: () => resolve(true) };
      setTimeout(() => resolve(false), PROBE_TIMEOUT_MS).unref();
    });
    try {
      await notifyChangedProbe(this.options.pool, PROBE_PREFIX + token);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not check that job change notifications arrive');
    }
    const ok = await arrived;
    if (this.probe?.token === token) this.probe = null;
    if (ok !== this.notified) {
      if (ok) this.options.logger.info('job change notifications arrive; waiters are told at once');
      else
        this.options.logger.warn(
          { poll_interval_ms: this.options.pollIntervalMs },
          'job change notifications do not arrive (a transaction pooler?); one shared poll serves every waiter',
        );
    }
    this.notified = ok;
    // Changes made while the connection was away were announced to nobody: read them now.
    this.poll.wake();
  }
}
