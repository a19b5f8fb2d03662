/**
 * Waking workers: they LISTEN on PENDING_CHANNEL (and poll, so a lost notification costs
 * latency, never a job). The insert sends no NOTIFY inside its transaction: PostgreSQL serialises
 * the commits of notifying transactions, which turned concurrent submitters into one
 * (docs/design.md, "Waking workers"). A caller notifies after its commit instead.
 */
import type { Db } from './db.js';

/** The channel workers listen on: jobs became pending (submitted, or handed back). */
export const PENDING_CHANNEL = 'ix_job_pending';

/**
 * The channel a job's cancellation is told on, its payload the job id: the worker running it
 * aborts its pipeline (a lost notification is made up for by the worker's next heartbeat).
 */
export const CANCEL_CHANNEL = 'ix_job_cancel';

/**
 * The channel job changes are told on, its payload the ids of the jobs that changed, comma
 * separated: started, progressed, retried, handed back, ended. API processes LISTEN on it to
 * answer long-polls and event streams the moment a job changes (src/watch/). Sent after the
 * commit that made the change, never inside its transaction (see above), so a lost notification
 * costs a waiter latency (its watcher's shared poll makes it up), never a change. Sent only while
 * a process with someone waiting is registered (watchers.ts): PostgreSQL wakes every listening
 * session of the database for every notification, whatever its channel, so unheard ones cost
 * each worker's and API's listen connection a wake-up.
 */
export const CHANGED_CHANNEL = 'ix_job_changed';

/** pg_notify's payload holds at most 8,000 bytes: 200 ids of 36 characters and a comma. */
const IDS_PER_NOTIFICATION = 200;

export async function jobNotifyPending(db: Db): Promise<void> {
  await db.query("SELECT pg_notify($1, '')", [PENDING_CHANNEL]);
}

// The registry is read in the statement's own snapshot: a watcher registered before it began is
// told (watcherRegister).
const NOTIFY_CHANGED_SQL = `
  SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload
  WHERE EXISTS (SELECT 1 FROM ix_watchers WHERE until > now())`;

/**
 * Tells CHANGED_CHANNEL's listeners that these jobs changed, in one statement, if any process
 * has someone waiting (watchers.ts); otherwise sends nothing.
 */
export async function jobNotifyChanged(db: Db, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return;
  const payloads: string[] = [];
  for (let i = 0; i < jobIds.length; i += IDS_PER_NOTIFICATION)
    payloads.push(jobIds.slice(i, i + IDS_PER_NOTIFICATION).join(','));
  await db.query(NOTIFY_CHANGED_SQL, [CHANGED_CHANNEL, payloads]);
}

/**
 * Sends `payload` on CHANGED_CHANNEL whoever waits: a watcher checks with it that notifications
 * reach it at all, before it has anyone waiting.
 */
export async function notifyChangedProbe(db: Db, payload: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [CHANGED_CHANNEL, payload]);
}

/**
 * A busy worker's change notifications follow one another at least this far apart, so each
 * carries the changes of a few statements: one per completion batch cost the worker ~5 µs of CPU
 * a job (bench/RESULTS.md, "Results without polling"). An idle one's first goes out at once.
 */
const CHANGED_MIN_INTERVAL_MS = 2;

/**
 * A busy API's wake-ups of idle workers follow one another at least this far apart. One after
 * every insert statement (~5 submits under bench:api) made a statement, a commit and a round trip
 * each: ~70 µs of PostgreSQL's CPU (the sender's and every listening session's) and 40–80 µs of the
 * API's, measured one notification at a time (docs/design.md, "Costs measured on the hot path"). A
 * worker already awake claims without them; an idle one waits this much longer only within a
 * burst, after its first notification, which goes out at once.
 */
const PENDING_MIN_INTERVAL_MS = 5;

/**
 * Sends notifications after commits, coalescing: at most one is in flight per notifier, and every
 * call made meanwhile is covered by one more afterwards, carrying all the job ids asked for since
 * (at most one per `minIntervalMs`). Wakes idle workers (`pending`) or tells watchers which jobs
 * changed (`changed`).
 */
export class Notifier {
  private inFlight: Promise<void> | null = null;
  private again = false;
  private jobIds: string[] = [];
  private lastSentAt = 0;

  private constructor(
    private readonly pool: Db,
    private readonly send: (db: Db, jobIds: readonly string[]) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly minIntervalMs: number,
  ) {}

  /** Wakes idle workers: jobs became pending. */
  static pending(pool: Db, onError: (error: unknown) => void = () => {}): Notifier {
    return new Notifier(pool, (db) => jobNotifyPending(db), onError, PENDING_MIN_INTERVAL_MS);
  }

  /** Tells watchers which jobs changed. */
  static changed(pool: Db, onError: (error: unknown) => void = () => {}): Notifier {
    return new Notifier(pool, (db, jobIds) => jobNotifyChanged(db, jobIds), onError, CHANGED_MIN_INTERVAL_MS);
  }

  notify(jobIds: readonly string[] = []): void {
    for (const id of jobIds) this.jobIds.push(id);
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.loop();
  }

  /** Resolves once every notification asked for so far has been sent. */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async loop(): Promise<void> {
    do {
      const waitMs = this.lastSentAt + this.minIntervalMs - Date.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      // Calls made while waiting are covered by this send.
      this.again = false;
      const jobIds = this.jobIds;
      this.jobIds = [];
      this.lastSentAt = Date.now();
      try {
        await this.send(this.pool, jobIds);
      } catch (error) {
        this.onError(error);
      }
    } while (this.again);
    this.inFlight = null;
  }
}
