import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Loop } from '../loop.js';
import { jobPruneExpired, type PruneResult, type RetentionPolicy } from '../store/index.js';

/** The retention settings as the store's policy. */
export function retentionPolicy(config: Config['retention']): RetentionPolicy {
  return {
    jobs: { done: config.done, error: config.error, cancelled: config.cancelled },
    tombstones: config.tombstones,
  };
}

export interface PruneOnceOptions {
  /** The clock, injected so tests need no sleeping; default: the database's now(). */
  now?: Date | null;
  /** Count what the pass would remove, and remove nothing. */
  dryRun?: boolean;
  /** How long the pass waits for older snapshots before leaving jobs to the next (default 10 s). */
  settleMs?: number;
}

/**
 * Prunes finished jobs past their retention to tombstones, and removes tombstones past theirs.
 * Runs in every worker; one process at a time prunes (jobPruneExpired's lock), the others skip
 * their pass, so many workers cost one pruner.
 */
export class Pruner {
  private readonly loop: Loop;
  /** Ends the pass in flight at its next statement: a pass over a large backlog can take minutes. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: Config['retention'],
    private readonly logger: Logger,
  ) {
    this.loop = new Loop({
      name: 'prune',
      logger,
      idleMs: config.pruneIntervalSeconds * 1000,
      // A pass goes on until nothing expired is left; what waits for older snapshots is taken
      // up by the next one.
      pass: async () => {
        await this.runOnce();
        return false;
      },
    });
  }

  /** One pass, on two connections of the pool (jobPruneExpired's lock holds one). */
  async runOnce(options: PruneOnceOptions = {}): Promise<PruneResult> {
    const result = await jobPruneExpired(this.pool, {
      policy: retentionPolicy(this.config),
      batchSize: this.config.pruneBatchSize,
      dutyPercent: this.config.pruneDutyPercent,
      now: options.now ?? null,
      dryRun: options.dryRun ?? false,
      signal: this.stopping.signal,
      ...(options.settleMs === undefined ? {} : { settleMs: options.settleMs }),
    });
    const removed = prunedCount(result) + result.tombstonesExpired;
    if (result.skipped) this.logger.debug('prune: another process is pruning; pass skipped');
    else if (removed > 0 || result.waiting > 0)
      this.logger.info(
        {
          dry_run: options.dryRun ?? false,
          pruned: result.pruned,
          tombstones_expired: result.tombstonesExpired,
          waiting: result.waiting,
          statements: result.statements,
          longest_statement_ms: Math.round(result.longestStatementMs * 10) / 10,
        },
        options.dryRun ? 'prune (dry run): would remove expired jobs' : 'pruned expired jobs',
      );
    return result;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    this.stopping.abort();
    return this.loop.stop();
  }
}

/** Jobs a pass pruned (or would), all statuses together. */
export function prunedCount(result: PruneResult): number {
  return result.pruned.done + result.pruned.error + result.pruned.cancelled;
}
