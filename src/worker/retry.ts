/**
 * How long a job waits before it runs again after a retryable failure. Whether it runs again at
 * all is the budget's to say (IX_MAX_ATTEMPTS, or the job's own `max_attempts`), which the
 * statement that records the outcome decides: see isLastAttempt in src/store/jobs/runs.ts.
 */
import type { Config } from '../config.js';

export type RetryPolicy = Pick<Config['worker'], 'retryBaseSeconds' | 'retryMaxSeconds'>;

/**
 * Seconds to wait before the run after `attempts` charged ones: exponential with full jitter
 * (uniform up to base × 2^attempts, at most the maximum), so jobs that failed together (a
 * service's outage) do not all come back together; a pipeline's own `Retry-After`
 * (`askedSeconds`) wins, capped by the maximum.
 */
export function backoffSeconds(
  attempts: number,
  askedSeconds: number | null,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  if (askedSeconds !== null) return Math.min(askedSeconds, policy.retryMaxSeconds);
  return random() * Math.min(policy.retryMaxSeconds, policy.retryBaseSeconds * 2 ** attempts);
}
