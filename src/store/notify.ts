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

export async function jobNotifyPending(db: Db): Promise<void> {
  await db.query("SELECT pg_notify($1, '')", [PENDING_CHANNEL]);
}

/**
 * Wakes idle workers after jobs were committed, coalescing: at most one NOTIFY is in flight per
 * process, and every call made meanwhile is covered by one more afterwards.
 */
export class PendingNotifier {
  private inFlight: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly pool: Pick<Db, 'query'>,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  notify(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.send();
  }

  /** Resolves once every notification asked for so far has been sent. */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async send(): Promise<void> {
    do {
      this.again = false;
      try {
        await jobNotifyPending(this.pool);
      } catch (error) {
        this.onError(error);
      }
    } while (this.again);
    this.inFlight = null;
  }
}
