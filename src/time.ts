/** Waiting, bounded waiting and backing off: the timing every part of ix shares. */

const MAX_TIMER_MS = 2 ** 31 - 1;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `promise`'s outcome, or a rejection with `onTimeout()`'s error once `ms` have passed first.
 * The promise is not cancelled, only no longer waited for: its owner aborts it if it can (a
 * pipeline's signal), or lets it run out (a DNS lookup, a statement stuck behind a lock).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  // setTimeout would take anything past 2^31 - 1 ms as 1 ms.
  if (ms > MAX_TIMER_MS) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
  });
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer));
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
