import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Loop } from '../loop.js';
import { type Beat, workerHeartbeat, workerRemove } from '../store/index.js';
import { settlesWithin } from '../time.js';

/**
 * A worker's row in the registry: registered before its first claim, renewed every
 * IX_HEARTBEAT_INTERVAL_SECONDS (its claims stay its own while that is fresh), removed at stop.
 * Each beat also brings back the ids of this worker's running jobs a client cancelled, for when
 * their notification was lost, and how many workers are live (whose beats are fresher than the
 * timeout), which spaces this one's claims and outcome writes (see ClaimWakes).
 */
export class Heartbeat {
  private readonly loop: Loop;
  private registered = false;
  /** register() beat, and the loop has not waited an interval since. */
  private registeredJustNow = false;
  /** When the current run of successful beats began; null after a failed one. */
  private beatingSince: number | null = null;
  private live = 1;

  constructor(
    private readonly pool: pg.Pool,
    private readonly workerId: string,
    private readonly config: Config['worker'],
    private readonly logger: Logger,
    onCancelled: (jobId: string) => void,
  ) {
    this.loop = new Loop({
      name: 'heartbeat (jobs may be rescued if it keeps failing)',
      logger,
      idleMs: config.heartbeatIntervalSeconds * 1000,
      pass: async () => {
        // The beat register() made is the first: another at once would be a statement wasted,
        // and at start it held a connection the first claim then had to open anew (~5 ms).
        if (this.registeredJustNow) {
          this.registeredJustNow = false;
          return false;
        }
        for (const jobId of await this.beat()) onCancelled(jobId);
        return false;
      },
    });
  }

  /** Registers the worker, once. */
  async register(): Promise<void> {
    if (this.registered) return;
    await this.beat();
    this.registered = true;
    this.registeredJustNow = true;
  }

  start(): void {
    this.loop.start();
  }

  /** The workers live at the last beat, this one included (1 before the first). */
  get liveWorkers(): number {
    return this.live;
  }

  /**
   * Whether this worker may judge others by their heartbeats: only once its own have held for a
   * whole timeout. Right after an outage every heartbeat is stale, the live workers' included,
   * and their running jobs would be charged for the database's absence.
   */
  judgesOthers(): boolean {
    const since = this.beatingSince;
    return since !== null && Date.now() - since >= this.config.heartbeatTimeoutSeconds * 1000;
  }

  /** Stops beating and leaves the registry, each within `ms`. */
  async stop(ms: number): Promise<void> {
    await settlesWithin(this.loop.stop(), ms);
    if (!this.registered) return;
    const removed = workerRemove(this.pool, this.workerId).catch((error: unknown) => {
      this.logger.error({ err: error }, 'could not deregister the worker');
    });
    if (!(await settlesWithin(removed, ms))) this.logger.error('could not deregister the worker in time');
  }

  private async beat(): Promise<string[]> {
    let beat: Beat;
    try {
      beat = await workerHeartbeat(this.pool, this.workerId, this.config.heartbeatTimeoutSeconds);
    } catch (error) {
      this.beatingSince = null;
      throw error;
    }
    this.beatingSince ??= Date.now();
    this.live = beat.liveWorkers;
    return beat.cancelled;
  }
}
