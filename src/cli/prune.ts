/** `ix prune [--dry-run]`: one pass of the pruner, by hand. */
import { parseArgs } from 'node:util';
import { durationText, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import type { PruneResult } from '../store/index.js';
import { Pruner, prunedCount } from '../worker/index.js';
import { openConfiguredPool, poolOptions, requirePostgresUrl } from './database.js';

/** Another process held the pruner's lock, so this pass did nothing: exit 1. */
export class PruneBusyError extends Error {
  constructor() {
    super("another process is pruning right now (a worker's pruner); nothing was done: try again later");
    this.name = 'PruneBusyError';
  }
}

const kept = (seconds: number | null) => (seconds === null ? 'forever' : durationText(seconds));

/** What a pass removed, or would: one line a kind, for people and for scripts alike. */
export function describePrune(result: PruneResult, dryRun: boolean): string {
  const verb = dryRun ? 'would remove' : 'removed';
  const { done, error, cancelled } = result.pruned;
  const lines = [
    `${verb} ${prunedCount(result)} expired jobs (done ${done}, error ${error}, cancelled ${cancelled}), leaving a tombstone each`,
    `${verb} ${result.tombstonesExpired} expired tombstones: their request ids may be submitted again`,
  ];
  if (result.waiting > 0)
    lines.push(
      `${result.waiting} jobs are tombstoned but still stored: an older transaction may still insert their keys; the next pass removes them`,
    );
  return lines.join('\n');
}

export async function prune(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { 'dry-run': { type: 'boolean' } } });
  const dryRun = values['dry-run'] ?? false;
  const config = loadConfig();
  const url = requirePostgresUrl(config, 'prune');
  const { retention } = config;
  console.error(
    `retention: done ${kept(retention.done)}, error ${kept(retention.error)}, cancelled ${kept(retention.cancelled)}, tombstones ${kept(retention.tombstones)}`,
  );
  // Two: the pass runs on one while the pruner's lock holds the other (jobPruneExpired).
  const pool = await openConfiguredPool(url, poolOptions(config, 'ix prune', { max: 2 }));
  try {
    const pruner = new Pruner(pool, retention, createLogger('silent'));
    const result = await pruner.runOnce({ dryRun });
    if (result.skipped) throw new PruneBusyError();
    console.log(describePrune(result, dryRun));
  } finally {
    await pool.end();
  }
}
