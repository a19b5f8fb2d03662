import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/index.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1000];
/** On a bound, between bounds, zero, past the last bound, and a sum that is not a round number. */
const SECONDS = [0, 0.0004, 0.001, 0.0011, 0.05, 0.3, 1, 7.25, 300, 999.9, 1000, 5000];

/** The series of one metric family, sorted: their order means nothing to Prometheus. */
const family = (text: string, name: string) =>
  text
    .split('\n')
    .filter(
      (line) => line.startsWith(`${name}_`) || line.startsWith(`${name}{`) || line.startsWith(`${name} `),
    )
    .sort();

describe('Metrics: what a worker tallies is shown as prom-client shows it', () => {
  it('histograms and counters, by outcome, as prom-client counts each call', async () => {
    const now = 1_700_000_000_000;
    const metrics = new Metrics({ heartbeatTimeoutSeconds: 30, clientLabels: false, now: () => now });
    const reference = new Registry();
    const registers = [reference];
    const wait = new Histogram({ name: 'ix_queue_wait_seconds', help: '-', buckets: BUCKETS, registers });
    const run = new Histogram({
      name: 'ix_pipeline_run_seconds',
      help: '-',
      labelNames: ['outcome'],
      buckets: BUCKETS,
      registers,
    });
    const endToEnd = new Histogram({
      name: 'ix_job_end_to_end_seconds',
      help: '-',
      labelNames: ['outcome'],
      buckets: BUCKETS,
      registers,
    });
    const runs = new Counter({
      name: 'ix_pipeline_runs_total',
      help: '-',
      labelNames: ['outcome'],
      registers,
    });
    const finished = new Counter({
      name: 'ix_jobs_finished_total',
      help: '-',
      labelNames: ['outcome'],
      registers,
    });

    const outcomes = ['done', 'error', 'cancelled'] as const;
    for (const [i, seconds] of SECONDS.entries()) {
      const outcome = outcomes[i % outcomes.length]!;
      metrics.queueWaited(seconds);
      wait.observe(seconds);
      metrics.pipelineRun(i % 4 === 3 ? 'retry' : outcome, seconds);
      run.observe({ outcome: i % 4 === 3 ? 'retry' : outcome }, seconds);
      runs.inc({ outcome: i % 4 === 3 ? 'retry' : outcome });
      metrics.jobFinished('acme', new Date(now - seconds * 1000).toISOString(), outcome);
      endToEnd.observe({ outcome }, (now - Date.parse(new Date(now - seconds * 1000).toISOString())) / 1000);
      finished.inc({ outcome });
    }
    metrics.jobsEnded('error', 2);
    finished.inc({ outcome: 'error' }, 2);

    const names = [
      'ix_queue_wait_seconds',
      'ix_pipeline_run_seconds',
      'ix_job_end_to_end_seconds',
      'ix_pipeline_runs_total',
      'ix_jobs_finished_total',
    ];
    // Read twice: what was tallied is added once, not again at the next read.
    for (let read = 0; read < 2; read++) {
      const text = await metrics.text();
      const expected = await reference.metrics();
      for (const name of names) {
        expect(family(text, name).length).toBeGreaterThan(0);
        expect(family(text, name)).toEqual(family(expected, name));
      }
      expect(text).toContain('# TYPE ix_queue_wait_seconds histogram');
    }
  });

  it('shows a histogram without labels at zero before its first observation, as prom-client does', async () => {
    const metrics = new Metrics({ heartbeatTimeoutSeconds: 30, clientLabels: false });
    const reference = new Registry();
    new Histogram({ name: 'ix_queue_wait_seconds', help: '-', buckets: BUCKETS, registers: [reference] });
    const text = await metrics.text();
    expect(family(text, 'ix_queue_wait_seconds')).toEqual(
      family(await reference.metrics(), 'ix_queue_wait_seconds'),
    );
    expect(family(text, 'ix_pipeline_run_seconds')).toEqual([]);
  });
});
