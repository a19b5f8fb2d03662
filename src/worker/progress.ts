/**
 * Progress reported by running pipelines (`ctx.progress`), stored at most about once a second
 * per job: each report replaces the job's last unsent one, and one statement a second writes all
 * of them. A pipeline may report on every page it reads; the database sees one update a second.
 */
import type { Logger } from 'pino';
import { type ProgressReport, ProgressReportSchema } from '../contracts/index.js';
import { Loop } from '../loop.js';
import { type Db, jobProgressMany } from '../store/index.js';
import type { Claim } from './claim.js';

/** How often reported progress is written: a job's progress is at most this old in the API. */
const PROGRESS_INTERVAL_MS = 1_000;

export interface ProgressRecorderOptions {
  pool: Db;
  logger: Logger;
  /** Whether the worker still runs this claim: a report of one that ended is dropped. */
  isRunning(claim: Claim): boolean;
  /** After each write: the jobs whose progress changed. */
  onRecorded(jobIds: readonly string[]): void;
}

export class ProgressRecorder {
  private unsent = new Map<Claim, ProgressReport>();
  private readonly loop: Loop;

  constructor(private readonly options: ProgressRecorderOptions) {
    this.loop = new Loop({
      name: 'progress',
      logger: options.logger,
      idleMs: PROGRESS_INTERVAL_MS,
      pass: async () => {
        await this.runOnce();
        return false;
      },
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Keeps `report` as the claim's latest; a malformed one is logged and ignored, never thrown. */
  report(claim: Claim, report: unknown): void {
    const parsed = ProgressReportSchema.safeParse(report);
    if (!parsed.success) {
      const { ix_id, job_id } = claim.job;
      this.options.logger.warn(
        { ix_id, job_id, problems: parsed.error.issues.map((issue) => issue.message) },
        'progress ignored: expected { percent?: 0–100, stage?: string, message?: string }',
      );
      return;
    }
    this.unsent.set(claim, parsed.data);
  }

  /**
   * Writes every running job's latest report in one statement; returns how many applied. A report
   * that did not apply because its job's `running` mark has not landed yet is kept for the next
   * pass, unless a newer one replaced it meanwhile.
   */
  async runOnce(): Promise<number> {
    const batch = [...this.unsent].filter(([claim]) => this.options.isRunning(claim));
    this.unsent = new Map();
    if (batch.length === 0) return 0;
    const applied = new Set(
      await jobProgressMany(
        this.options.pool,
        batch.map(([claim, report]) => ({
          jobId: claim.job.job_id,
          attempt: claim.job.attempts,
          claimEpoch: claim.claimEpoch,
          report,
        })),
      ),
    );
    for (const [claim, report] of batch)
      if (!applied.has(claim.job.job_id) && !this.unsent.has(claim)) this.unsent.set(claim, report);
    if (applied.size > 0) this.options.onRecorded([...applied]);
    return applied.size;
  }
}
