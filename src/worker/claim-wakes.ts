/**
 * When a worker claims, beyond its idle poll: when it hears that jobs are pending, and when room is
 * made for more jobs (one of its jobs ended). Both are tempered by what its claims found.
 *
 * Notifications. Every listening worker hears every one, so if all answered each, N idle
 * workers would make N claims per job, and N − 1 of them would find nothing. A claim made in
 * answer to a notification that finds nothing is evidence that another worker is taking the jobs:
 * for QUIET_MS after it, the worker answers the notifications it hears once, at the end of that
 * time; each further such claim in a row doubles the quiet, up to QUIET_MAX_MS. A claim that
 * finds jobs ends the quiet at once, and the next one starts from QUIET_MS again. With 4 workers
 * and jobs submitted one at a time, a fixed 25 ms quiet still left 0.62 claims a job finding
 * nothing (bench/RESULTS.md): the workers that lost a race answered again 40 times a second.
 *
 * Room. After a claim that found nothing ready, a job of this worker's ending is no reason to
 * claim: jobs that become ready later announce themselves (a submit, a hand-back, a rescue or an
 * operator's retry notifies; a job due later is waited for, jobNextReadyInMs). With 4 workers,
 * 5,149 of 7,831 claims found nothing, most of them made as a job ended (bench/RESULTS.md). Two
 * endings do make a job claimable that nothing announces: the end of a job that held one of its
 * client's `max_running` slots claims at once, and a retry queued by this worker claims once it is
 * due (a timer, not the probe for the next due job: that probe, made after an empty claim, misses
 * a job that became due between the claim and the probe).
 *
 * Notifications and room are hints, never the only way to a job: a worker still claims at its
 * idle poll, and a job waits at most QUIET_MAX_MS longer for a worker that keeps losing races
(when the worker winning them has no room left: otherwise that one takes it at once).
 *
 * Pace. Under a trickle each wake would still ask for a statement, and N workers sharing the jobs
 * would make N times the claims, each with its fixed cost (~0.6–1 ms of PostgreSQL's CPU for a
 * claim of one job). So a claim that came back short (it emptied the queue) makes the next one
 * wait the pace: IX_WORKER_BATCH_INTERVAL_MS times the live workers, so the fleet claims about once
 * an interval whatever its size (at 300 submits/s, 4 workers then cost PostgreSQL what one does:
 * bench/RESULTS.md, "Many processes: a pace"). A full claim is not paced (a backlog already makes
 * full batches), nor an empty one: every worker that answered the same notification would wait
 * out the pace together, and a job arriving next with them.
 */
import { Pace } from '../time.js';

/** How long a worker that lost the race for a notification stays quiet, the first time. */
export const QUIET_MS = 25;
/**
 * The longest quiet, after races lost in a row: at most 1000 / QUIET_MAX_MS claims a second that
 * find nothing per such worker, whatever the rate of submissions.
 */
export const QUIET_MAX_MS = 100;

export class ClaimWakes {
  private readonly pace: Pace;
  private claimStartedAt = 0;
  private quietUntil = 0;
  /** The quiet the next notification-answering claim that finds nothing starts. */
  private quietMs = QUIET_MS;
  private answering = false;
  private deferred: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  /** The last claim found nothing ready. */
  private drained = false;
  private readonly dueTimers = new Set<ReturnType<typeof setTimeout>>();

  /** `wake` asks the worker for a claim (it claims if it has room); `paceMs`, the pace now. */
  constructor(
    private readonly wake: () => void,
    paceMs: () => number,
  ) {
    this.pace = new Pace(paceMs);
  }

  /** How long the next claim must still wait for the pace; 0: it may start now. */
  pacedForMs(): number {
    return this.pace.waitMs();
  }

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
   * Room was made for more jobs: a claim, unless the last one found nothing ready and the room came
   * with no job claimable that nothing announces (`unannounced`: a `max_running` slot freed).
   */
  roomMade(unannounced: boolean): void {
    if (this.stopped) return;
    if (unannounced) this.drained = false;
    if (!this.drained) this.wake();
  }

  /** A retry this worker queued becomes due in `ms`: a claim then. */
  retryDueIn(ms: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.dueTimers.delete(timer);
      this.roomMade(true);
    }, ms);
    this.dueTimers.add(timer);
  }

  /**
   * Called as a claim begins: whether it answers a notification, so that finding nothing makes
   * the worker quiet (a claim for room made or by the idle poll that finds nothing does not).
   */
  claimBegins(): boolean {
    this.claimStartedAt = performance.now();
    const answering = this.answering;
    this.answering = false;
    return answering;
  }

  /**
   * Called as a claim ends, with how many jobs it found of how many it asked for, and what
   * claimBegins returned for it.
   */
  claimEnded(found: number, asked: number, answering: boolean): void {
    if (found > 0 && found < asked) this.pace.paced(this.claimStartedAt);
    else this.pace.unpaced();
    this.drained = found === 0;
    if (found > 0) {
      this.quietUntil = 0;
      this.quietMs = QUIET_MS;
    } else if (answering) {
      this.quietUntil = Date.now() + this.quietMs;
      this.quietMs = Math.min(QUIET_MAX_MS, this.quietMs * 2);
    }
  }

  /** Drops the claims still waiting (a deferred answer, due retries), and asks for no more. */
  stop(): void {
    this.stopped = true;
    if (this.deferred) clearTimeout(this.deferred);
    this.deferred = null;
    for (const timer of this.dueTimers) clearTimeout(timer);
    this.dueTimers.clear();
  }

  private answer(): void {
    this.answering = true;
    this.wake();
  }
}
