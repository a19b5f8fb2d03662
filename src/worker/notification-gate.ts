/**
 * When a worker answers "jobs are pending". Every listening worker hears every notification, so
 * if all answered each one, N idle workers would make N claims per job, and N − 1 of them would
 * find nothing. A claim made in answer to a notification that finds nothing is evidence that
 * another worker is taking the jobs. For QUIET_MS after it, the worker answers the notifications
 * it hears once, at the end of that time. A claim that finds jobs ends the quiet at once.
 * Notifications are hints, never the only way to a job: a quiet worker still claims when its slots
 * free up and when its idle poll comes, and a job whose notifier was quieted waits at most
 * QUIET_MS more for it.
 */

/**
 * How long a worker that lost the race for a notification stays quiet: at most 1000 / QUIET_MS
 * claims a second that find nothing per such worker, whatever the rate of submissions.
 */
export const QUIET_MS = 25;

export class NotificationGate {
  private quietUntil = 0;
  private answering = false;
  private deferred: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    /** Asks the worker for a claim. */
    private readonly wake: () => void,
    private readonly quietMs = QUIET_MS,
  ) {}

  /** A "jobs pending" notification arrived: a claim now, or one at the end of the quiet. */
  heard(): void {
    if (this.stopped) return;
    const quietForMs = this.quietUntil - Date.now();
    if (quietForMs <= 0) {
      this.answer();
      return;
    }
    this.deferred ??= setTimeout(() => {
      this.deferred = null;
      this.answer();
    }, quietForMs);
  }

  /**
   * Called as a claim begins: whether it answers a notification, so that finding nothing makes
   * the worker quiet (a claim for freed slots or by the idle poll that finds nothing does not).
   */
  claimBegins(): boolean {
    const answering = this.answering;
    this.answering = false;
    return answering;
  }

  /** Called as a claim ends, with what claimBegins returned for it. */
  claimEnded(found: number, answering: boolean): void {
    if (found > 0) this.quietUntil = 0;
    else if (answering) this.quietUntil = Date.now() + this.quietMs;
  }

  /** Drops an answer still waiting for the end of the quiet, and answers no more. */
  stop(): void {
    this.stopped = true;
    if (this.deferred) clearTimeout(this.deferred);
    this.deferred = null;
  }

  private answer(): void {
    this.answering = true;
    this.wake();
  }
}
