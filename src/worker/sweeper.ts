import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type SweepResult, sweepOrphans, workerPruneStale } from '../store/index.js';

/**
 * Rescues the jobs of dead or stalled workers. Runs in every worker (cheap, idempotent, safe
 * concurrently: each job is moved by exactly one sweeper, see sweepOrphans).
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: Config['worker'],
    private readonly logger: Logger,
  ) {}

  /** One pass; `now` is injectable so tests need no sleeping. */
  async runOnce(now: Date | null = null): Promise<SweepResult> {
    const result = await sweepOrphans(this.pool, {
      now,
      // The seed's rule, kept as the fallback for a worker that heartbeats but is stuck.
      maxRunningSeconds: 2 * this.config.requestTimeoutSeconds,
      heartbeatTimeoutSeconds: this.config.heartbeatTimeoutSeconds,
      maxAttempts: this.config.maxAttempts,
    });
    // Workers gone for ten heartbeat timeouts hold nothing any more; forget them.
    await workerPruneStale(this.pool, 10 * this.config.heartbeatTimeoutSeconds, now);
    if (result.requeued.length + result.returned.length + result.abandoned.length > 0) {
      this.logger.warn(
        { requeued: result.requeued, returned: result.returned, abandoned: result.abandoned },
        'rescued jobs of dead or stalled workers',
      );
    }
    return result;
  }

  start(): void {
    this.running = true;
    const tick = async () => {
      try {
        await this.runOnce();
      } catch (error) {
        this.logger.error({ err: error }, 'sweep failed; will retry at the next interval');
      }
      if (!this.running) return;
      this.timer = setTimeout(tick, this.config.sweepIntervalSeconds * 1000);
      this.timer.unref();
    };
    void tick();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
