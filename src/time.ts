/** Waiting, bounded waiting and backing off: the timing every part of ix shares. */

const MAX_TIMER_MS = 2 ** 31 - 1;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A timeout waiting in its TimeoutList. */
interface Pending {
  /** performance.now() at which it expires. */
  readonly deadline: number;
  readonly expire: () => void;
  previous: Pending | null;
  next: Pending | null;
  /** Still in its list: not expired, not cancelled. */
  waiting: boolean;
}

/**
 * The timeouts of one duration, in the order they were set, which is the order they fall due:
 * one timer, armed for the first, serves them all, and a timeout is cancelled by unlinking it. A
 * timer set and cleared per operation, raced against it, cost ~1 µs of CPU a job in a busy
 * worker (docs/design.md, "Costs measured on the hot path"). Like a timer of its own, a timeout
 * keeps the process alive until it ends: the list's timer is unref'd while the list is empty,
 * rather than cleared, since a busy worker's list empties and fills again between its jobs.
 */
class TimeoutList {
  private first: Pending | null = null;
  private last: Pending | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ms: number,
    private readonly onEnd: () => void,
  ) {}

  add(expire: () => void): Pending {
    const pending: Pending = {
      deadline: performance.now() + this.ms,
      expire,
      previous: this.last,
      next: null,
      waiting: true,
    };
    if (this.last === null) this.first = pending;
    else this.last.next = pending;
    this.last = pending;
    if (this.timer === null) this.timer = setTimeout(this.expireDue, this.ms);
    else if (this.first === pending) this.timer.ref();
    return pending;
  }

  cancel(pending: Pending): void {
    if (!pending.waiting) return;
    this.unlink(pending);
    // Left armed for a timeout that has gone, the timer wakes early once and is armed again.
    if (this.first === null) this.timer?.unref();
  }

  private unlink(pending: Pending): void {
    pending.waiting = false;
    if (pending.previous === null) this.first = pending.next;
    else pending.previous.next = pending.next;
    if (pending.next === null) this.last = pending.previous;
    else pending.next.previous = pending.previous;
  }

  private readonly expireDue = (): void => {
    this.timer = null;
    const now = performance.now();
    while (this.first !== null && this.first.deadline <= now) {
      const due = this.first;
      this.unlink(due);
      due.expire();
    }
    if (this.first === null) this.onEnd();
    // Node's timers count from the event loop's clock, which lags performance.now() while a
    // turn of the loop runs: a timer may fire before the first timeout is due by this clock.
    else this.timer ??= setTimeout(this.expireDue, Math.max(1, this.first.deadline - now));
  };
}

/** The timeout lists whose timer is armed, by duration (ms). */
const timeoutLists = new Map<number, TimeoutList>();

/**
 * `promise`'s outcome, or a rejection with `onTimeout()`'s error once `ms` have passed first.
 * The promise is not cancelled, only no longer waited for: its owner aborts it if it can (a
 * pipeline's signal), or lets it run out (a DNS lookup, a statement stuck behind a lock).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  // setTimeout would take anything past 2^31 - 1 ms as 1 ms.
  if (ms > MAX_TIMER_MS) return promise;
  // NaN as 0, as setTimeout takes it: a deadline of NaN would never fall due.
  const duration = Number.isNaN(ms) ? 0 : Math.max(0, ms);
  let list = timeoutLists.get(duration);
  if (list === undefined) {
    list = new TimeoutList(duration, () => timeoutLists.delete(duration));
    timeoutLists.set(duration, list);
  }
  const timeouts = list;
  return new Promise<T>((resolve, reject) => {
    const pending = timeouts.add(() => reject(onTimeout()));
    promise.then(
      (value) => {
        timeouts.cancel(pending);
        resolve(value);
      },
      (error: unknown) => {
        timeouts.cancel(pending);
        reject(error);
      },
    );
  });
}

let formattedMs = Number.NaN;
let formatted = '';

/**
 * `new Date(ms).toISOString()`, the last one kept: a busy worker starts many jobs in the same
 * millisecond, and each format costs ~0.5 µs (docs/design.md, "Costs measured on the hot path").
 */
export function isoString(ms: number): string {
  if (ms !== formattedMs) {
    formatted = new Date(ms).toISOString();
    formattedMs = ms;
  }
  return formatted;
}

class Late extends Error {}

/** Waits for `promise` at most `ms`; says whether it settled (fulfilled or rejected) in time. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = promise.then(
    () => true,
    () => true,
  );
  try {
    return await withTimeout(settled, ms, () => new Late());
  } catch {
    return false;
  }
}

/** Exponential backoff for retrying a failed step: 100 ms, doubling, at most 5 s. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly firstMs = 100,
    private readonly maxMs = 5_000,
  ) {
    this.nextMs = firstMs;
  }

  /** The delay to wait before the next try; each call doubles the one after. */
  next(): number {
    const delay = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.maxMs);
    return delay;
  }

  reset(): void {
    this.nextMs = this.firstMs;
  }
}

/**
 * A shortcut that may not apply, skipped for `ms` after it last did not: the statement it wastes
 * when it cannot serve is paid at most once a pause. On the wall clock (Date.now()), which tests
 * fake.
 */
export class Pause {
  private until = 0;

  constructor(private readonly ms: number) {}

  /** Whether the shortcut is being skipped now. */
  get active(): boolean {
    return Date.now() < this.until;
  }

  /** The shortcut did not apply: skip it for the pause. */
  start(): void {
    this.until = Date.now() + this.ms;
  }
}

/**
 * Spaces out one kind of statement: once `paced()` is called, the next waits until `intervalMs()`
 * (read each time: it may change) has passed since then. `unpaced()` lifts the wait.
 */
export class Pace {
  private since: number | null = null;

  constructor(private readonly intervalMs: () => number) {}

  /** How long the next must still wait; 0: it may start now. */
  waitMs(now = performance.now()): number {
    if (this.since === null) return 0;
    return Math.max(0, Math.ceil(this.since + this.intervalMs() - now));
  }

  /** One started at `at`: the next waits the interval from then. */
  paced(at = performance.now()): void {
    this.since = at;
  }

  unpaced(): void {
    this.since = null;
  }
}
