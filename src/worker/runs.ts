import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/index.js';
import { isoString } from '../time.js';
import type { Claim } from './claim.js';
import type { Pipeline } from './pipeline.js';
import type { ProgressRecorder } from './progress.js';
import { JobAbort, type RunOutcome, runPipeline } from './run.js';

export interface RunsOptions {
  pipeline: Pipeline;
  config: Config['worker'];
  logger: Logger;
  metrics: Metrics | null;
  progress: ProgressRecorder;
  /** A run returned: its outcome, for the claim that ran it. */
  finished(claim: Claim, run: RunOutcome): void;
  /** A run is over, whether it returned or not: its slot is free. */
  ended(claim: Claim): void;
}

/**
 * The pipelines a worker is running, each under its job's timeout and abort switch, from the
 * call to the outcome handed on.
 */
export class Runs {
  private readonly running = new Map<Claim, Promise<void>>();

  constructor(private readonly options: RunsOptions) {}

  get size(): number {
    return this.running.size;
  }

  has(claim: Claim): boolean {
    return this.running.has(claim);
  }

  /** The claims whose pipelines are running. */
  claims(): Claim[] {
    return [...this.running.keys()];
  }

  /** Settles once every run in flight now has ended. */
  async settled(): Promise<void> {
    await Promise.all(this.running.values());
  }

  start(claim: Claim): void {
    const now = Date.now();
    claim.invokedAt = isoString(now);
    this.options.metrics?.queueWaited(claim.waitedSeconds + (now - claim.claimedAtMs) / 1000);
    // execute() always awaits before its `finally`, so the claim is in `running` by then.
    this.running.set(claim, this.execute(claim));
  }

  private async execute(claim: Claim): Promise<void> {
    const { job } = claim;
    const jobLogger = () =>
      this.options.logger.child({ ix_id: job.ix_id, job_id: job.job_id, attempt: job.attempts });
    claim.abort = new JobAbort();
    const started = performance.now();
    try {
      const run = await runPipeline(this.options.pipeline, job, {
        timeoutSeconds: this.options.config.requestTimeoutSeconds,
        abort: claim.abort,
        logger: jobLogger,
        progress: (report) => this.options.progress.report(claim, report),
      });
      claim.runSeconds = (performance.now() - started) / 1000;
      this.options.finished(claim, run);
    } finally {
      this.running.delete(claim);
      this.options.ended(claim);
    }
  }
}
