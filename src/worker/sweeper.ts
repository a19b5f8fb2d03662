import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Loop } from '../loop.js';
import type { Metrics } from '../metrics/index.js';
import { jobSweepOrphans, type SweepResult, workerPruneStale } from '../store/index.js';

/**
 * Rescues the jobs of dead or stalled workers. Runs in every worker (cheap, idempotent, safe
 * concurrently: each job is moved by exactly one sweeper, see jobSweepOrphans).
 */
export class Sweeper {
  private readonly loop: Loop;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: Config['worker'],
    private readonly logger: Logger,
    /** Whether the heartbeat rule may be applied now; without one, always. */
    private readonly judgesHeartbeats: () => boolean = () => true,
    private readonly metrics: Metrics | null = null,
  ) {
    this.loop = new Loop({
      name: 'sweep',
      logger,
      idleMs: config.sweepIntervalSeconds * 1000,
      pass: async () => {
        await this.runOnce();
        return false;
      },
    });
  }

  /** One pass; `now` is injectable so tests need no sleeping. */
  async runOnce(now: Date | null = null): Promise<SweepResult> {
    const result = await jobSweepOrphans(this.pool, {
      now,
      // For a worker that heartbeats but is stuck: twice the timeout its pipeline should have hit.
      maxRunningSeconds: 2 * this.config.requestTimeoutSeconds,
      heartbeatTimeoutSeconds: this.judgesHeartbeats() ? this.config.heartbeatTimeoutSeconds : null,
      maxAttempts: this.config.maxAttempts,
    });
    // Workers gone for ten heartbeat timeouts hold nothing any more; forget them.
    await workerPruneStale(this.pool, 10 * this.config.heartbeatTimeoutSeconds, now);
    this.metrics?.rescued(result.requeued.length + result.abandoned.length);
    this.metrics?.jobsEnded('error', result.abandoned.length);
    this.metrics?.jobsEnded('cancelled', result.cancelled.length);
    if (Object.values(result).some((ids) => ids.length > 0))
      this.logger.warn({ ...result }, 'rescued jobs of dead or stalled workers');
    return result;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
