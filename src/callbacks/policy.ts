/** What an attempt's result means for the delivery, and when the next attempt is due. */

/** What one HTTP attempt came to; `statusCode` null means no response (refused, network, timeout). */
export interface AttemptResult {
  statusCode: number | null;
  /** Seconds the receiver asked us to wait (`Retry-After`), if it did. */
  retryAfterSeconds: number | null;
  error: string | null;
  /** false for errors that retrying cannot fix (a refused URL). */
  retryable: boolean;
}

export type Verdict =
  | { kind: 'delivered' }
  | { kind: 'retry'; retryAfterSeconds: number | null; error: string }
  | { kind: 'failed'; error: string };

/**
 * 2xx delivers. No response, 408, 429 and 5xx are worth retrying; every other status (410,
 * the remaining 4xx, and 3xx since redirects are not followed) fails at once.
 */
export function judge(result: AttemptResult): Verdict {
  const { statusCode } = result;
  if (statusCode === null) {
    const error = result.error ?? 'no response';
    return result.retryable ? { kind: 'retry', retryAfterSeconds: null, error } : { kind: 'failed', error };
  }
  if (statusCode >= 200 && statusCode < 300) return { kind: 'delivered' };
  if (statusCode === 408 || statusCode === 429 || statusCode >= 500) {
    return {
      kind: 'retry',
      retryAfterSeconds: result.retryAfterSeconds,
      error: result.error ?? `HTTP ${statusCode}`,
    };
  }
  return { kind: 'failed', error: result.error ?? `HTTP ${statusCode}` };
}

// A receiver's Retry-After is honoured up to a day: beyond that a buggy or hostile header would
// park the delivery for ever, and the schedule's own delays end long before.
export const MAX_RETRY_AFTER_SECONDS = 86_400;

/** `Retry-After` as seconds from `now`: delta-seconds or an HTTP-date; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date = new Date()): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text), MAX_RETRY_AFTER_SECONDS);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.min(Math.max(0, Math.ceil((date - now.getTime()) / 1000)), MAX_RETRY_AFTER_SECONDS);
}

/**
 * Seconds until attempt `attempt + 1`, or null when the schedule is exhausted. The schedule
 * lists the delay before each attempt, so it also bounds their number. Jitter of ±10% spreads
 * retries of many callbacks that failed together (a receiver's outage); a 0 delay stays 0.
 * `Retry-After` can only lengthen the wait, never shorten what the schedule says.
 */
export function nextDelaySeconds(
  schedule: readonly number[],
  attempt: number,
  retryAfterSeconds: number | null,
  random: () => number = Math.random,
): number | null {
  const scheduled = schedule[attempt];
  if (scheduled === undefined) return null;
  const jittered = scheduled === 0 ? 0 : scheduled * (0.9 + 0.2 * random());
  return Math.max(jittered, retryAfterSeconds ?? 0);
}
