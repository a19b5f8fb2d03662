/** When a failed run is tried again: the budget of runs, and the backoff before the next one. */
import type { Config } from '../config.js';
import type { Job } from '../contracts/index.js';

export type RetryPolicy = Pick<Config['worker'], 'maxAttempts' | 'retryBaseSeconds' | 'retryMaxSeconds'>;

/**
 * Seconds to wait before running `job` again after a retryable failure of its current run, or
 * null when that run was its last: a job runs at most its `max_attempts` (else IX_MAX_ATTEMPTS)
 * times, and `attempts` counts the runs charged before this one. The wait is exponential with
 * full jitter (uniform up to base × 2^attempts, at most the maximum), so jobs that failed together
 * (a service's outage) do not all come back together; a pipeline's own `Retry-After` wins,
 * capped by the maximum.
 */
export function retryInSeconds(
  job: Pick<Job, 'attempts' | 'max_attempts'>,
  askedSeconds: number | null,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | null {
  if (job.attempts + 1 >= (job.max_attempts ?? policy.maxAttempts)) return null;
  if (askedSeconds !== null) return Math.min(askedSeconds, policy.retryMaxSeconds);
  return random() * Math.min(policy.retryMaxSeconds, policy.retryBaseSeconds * 2 ** job.attempts);
}
