/** Waiting, bounded waiting and backing off: the timing every background loop of ix shares. */

const MAX_TIMER_MS = 2 ** 31 - 1;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for `promise` at most `ms`; says whether it settled in time. A promise that does not is
 * left running: the caller stops waiting for it, nothing more (a pipeline that ignores its abort
 * signal, a statement stuck behind a lock).
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = promise.then(
    () => true,
    () => true,
  );
  // setTimeout would take anything past 2^31 - 1 ms as 1 ms.
  if (ms > MAX_TIMER_MS) return settled;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([settled, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Exponential backoff for retrying a failed database step: 100 ms, doubling, at most 5 s. */
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
