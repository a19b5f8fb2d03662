/**
 * Each process's Prometheus metrics (prom-client), served as text at `/metrics`: counters and
 * histograms moved where each event happens, in memory (the hot path gains no statement), and
 * gauges read from the database when scraped, through one statement over the small live tables
 * (`liveCounts`), cached for a second so a scrape every second costs at most that.
 *
 * What a worker counts for every job (its wait, its run, its end) is tallied here by outcome and
 * handed to prom-client only when the metrics are read: prom-client validates and hashes the
 * labels of every call, and those calls cost a busy worker 3–6 µs of its ~29 µs of CPU a job
 * (docs/design.md, "Costs measured on the hot path").
 */
import { Counter, collectDefaultMetrics, Gauge, type Histogram, Registry } from 'prom-client';
import type { Db } from '../store/index.js';
import { type LiveCounts, liveCounts } from '../store/index.js';

export interface MetricsOptions {
  /** Where the gauges are read; none: the process serves no gauges (a test's counters alone). */
  db?: Db | null;
  /** A worker is live while its heartbeat is younger than this (IX_HEARTBEAT_TIMEOUT_SECONDS). */
  heartbeatTimeoutSeconds: number;
  /** IX_METRICS_CLIENT_LABELS: label submitted and finished jobs by client (unbounded cardinality). */
  clientLabels: boolean;
  /** How long a read of the gauges is reused. */
  gaugeCacheMs?: number;
  /** The clock, injected so tests need no sleeping. */
  now?: () => number;
}

export type FinishedOutcome = 'done' | 'error' | 'cancelled';
export type RunResult = 'done' | 'error' | 'retry' | 'cancelled';
export type CallbackResult = 'delivered' | 'retry' | 'failed';

/** Seconds, from 1 ms to ~17 min: jobs range from no-op pipelines to long HTTP calls. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1000];

/** One series of a metric as prom-client's registry reads it from `get()`. */
interface SeriesValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** The observations of one label set: per-bucket (not cumulative) counts, the last for +Inf. */
class Tally {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(buckets: number) {
    this.counts = new Array<number>(buckets + 1).fill(0);
  }
}

/**
 * A histogram with at most one label, whose observation is a bucket search and three additions;
 * prom-client's registry formats it exactly as its own Histogram (tests/unit/metrics.test.ts),
 * reading it through `get()` like any metric.
 */
class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly tallies = new Map<string, Tally>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    /** The label, or null: none (then its one series is shown from the start, at zero). */
    private readonly labelName: string | null,
    registry: Registry,
  ) {
    if (labelName === null) this.tallies.set('', new Tally(buckets.length));
    // The registry reads a metric through get() and reset() alone; its parameter's type names
    // only prom-client's own classes.
    registry.registerMetric(this as unknown as Histogram);
  }

  observe(value: number, labelValue = ''): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    let tally = this.tallies.get(labelValue);
    if (tally === undefined) {
      tally = new Tally(this.buckets.length);
      this.tallies.set(labelValue, tally);
    }
    const { buckets } = this;
    let bucket = 0;
    while (bucket < buckets.length && value > buckets[bucket]!) bucket++;
    tally.counts[bucket]! += 1;
    tally.sum += value;
    tally.count += 1;
  }

  /** The series prom-client's Histogram shows, in its order: each label set's buckets, +Inf, sum, count. */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: SeriesValue[];
  }> {
    const values: SeriesValue[] = [];
    for (const [labelValue, tally] of this.tallies) {
      const labels = this.labelName === null ? {} : { [this.labelName]: labelValue };
      let cumulative = 0;
      for (const [i, le] of this.buckets.entries()) {
        cumulative += tally.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
      }
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: '+Inf', ...labels },
        value: tally.count,
      });
      values.push({ metricName: `${this.name}_sum`, labels, value: tally.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: tally.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.tallies.clear();
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly submitted: Counter<'client'>;
  private readonly finished: Counter<'outcome' | 'client'>;
  private readonly runs: Counter<'outcome'>;
  private readonly rescues: Counter;
  private readonly callbackAttempts: Counter<'result'>;
  private readonly queueWait: TalliedHistogram;
  private readonly runTime: TalliedHistogram;
  private readonly endToEnd: TalliedHistogram;
  private readonly callbackLatency: TalliedHistogram;
  /** Runs counted since the registry last read `runs`, by outcome. */
  private readonly runsUnadded = new Map<RunResult, number>();
  /** Ends counted since the registry last read `finished`, by outcome, then client ('' unlabelled). */
  private readonly endsUnadded = new Map<FinishedOutcome, Map<string, number>>();
  private live: { at: number; read: Promise<LiveCounts> } | null = null;
  /**
   * The last submission time parsed: jobs submitted in one statement share it and tend to end
   * together, and each Date.parse costs ~0.2 µs.
   */
  private createdAt = { text: '', ms: 0 };

  constructor(private readonly options: MetricsOptions) {
    const registers = [this.registry];
    const byClient = options.clientLabels ? (['client'] as const) : [];
    collectDefaultMetrics({ register: this.registry, prefix: 'ix_' });
    this.submitted = new Counter({
      name: 'ix_jobs_submitted_total',
      help: 'Jobs submitted through this process (new jobs, not idempotent replays)',
      labelNames: byClient,
      registers,
    });
    this.finished = new Counter({
      name: 'ix_jobs_finished_total',
      help: 'Jobs this process ended, by outcome: a worker recording it, or its sweeper abandoning or cancelling a rescued job',
      labelNames: ['outcome', ...byClient],
      registers,
      collect: () => this.addEnds(),
    });
    this.runs = new Counter({
      name: 'ix_pipeline_runs_total',
      help: 'Pipeline runs this process recorded, by outcome (retry: failed retryably, runs again)',
      labelNames: ['outcome'],
      registers,
      collect: () => this.addRuns(),
    });
    this.rescues = new Counter({
      name: 'ix_rescues_total',
      help: 'Started jobs this process’s sweeper took from a dead or stalled worker',
      registers,
    });
    this.callbackAttempts = new Counter({
      name: 'ix_callback_attempts_total',
      help: 'Callback delivery attempts this process made, by result',
      labelNames: ['result'],
      registers,
    });
    this.queueWait = new TalliedHistogram(
      'ix_queue_wait_seconds',
      'From when a job was ready (submitted, scheduled time, or end of a retry backoff) to its pipeline’s start',
      SECONDS_BUCKETS,
      null,
      this.registry,
    );
    this.runTime = new TalliedHistogram(
      'ix_pipeline_run_seconds',
      'How long pipeline runs took, by outcome',
      SECONDS_BUCKETS,
      'outcome',
      this.registry,
    );
    this.endToEnd = new TalliedHistogram(
      'ix_job_end_to_end_seconds',
      'From submission to the recorded outcome, by outcome',
      SECONDS_BUCKETS,
      'outcome',
      this.registry,
    );
    this.callbackLatency = new TalliedHistogram(
      'ix_callback_delivery_seconds',
      'From a job’s end to its callback’s delivery',
      SECONDS_BUCKETS,
      null,
      this.registry,
    );
    if (options.db) this.addGauges();
  }

  private get now(): number {
    return (this.options.now ?? Date.now)();
  }

  private addGauges(): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, value: (live: LiveCounts) => number | null) =>
      new Gauge({
        name,
        help,
        registers,
        collect: async function (this: Gauge) {
          const read = value(await metrics.liveCounts());
          if (read === null) this.reset();
          else this.set(read);
        },
      });
    const metrics = this;
    gauge('ix_jobs_pending', 'Jobs pending: queued, or claimed and not started', (l) => l.pending);
    gauge('ix_jobs_running', 'Jobs running', (l) => l.running);
    gauge(
      'ix_oldest_pending_age_seconds',
      'How long the job that became ready first has waited (absent when none waits)',
      (l) => l.oldestPendingSeconds,
    );
    gauge('ix_workers_live', 'Workers whose heartbeat is fresh', (l) => l.liveWorkers);
    gauge('ix_callbacks_due', 'Callback deliveries due now', (l) => l.callbacksDue);
  }

  /** The live figures, read at most once per `gaugeCacheMs` (one read shared by every gauge of a scrape). */
  liveCounts(): Promise<LiveCounts> {
    const db = this.options.db;
    if (!db) throw new Error('Metrics: no database to read the gauges from');
    const now = this.now;
    if (this.live === null || now - this.live.at >= (this.options.gaugeCacheMs ?? 1_000)) {
      const read = liveCounts(db, this.options.heartbeatTimeoutSeconds);
      // A failed read is not kept: the next scrape tries again.
      read.catch(() => {
        if (this.live?.read === read) this.live = null;
      });
      this.live = { at: now, read };
    }
    return this.live.read;
  }

  private clientLabel(clientId: string): { client?: string } {
    return this.options.clientLabels ? { client: clientId } : {};
  }

  jobSubmitted(clientId: string): void {
    this.submitted.inc(this.clientLabel(clientId));
  }

  /** A job ended; `createdAt` is its submission time (ISO 8601). */
  jobFinished(clientId: string, createdAt: string, outcome: FinishedOutcome): void {
    let byClient = this.endsUnadded.get(outcome);
    if (byClient === undefined) {
      byClient = new Map();
      this.endsUnadded.set(outcome, byClient);
    }
    const client = this.options.clientLabels ? clientId : '';
    byClient.set(client, (byClient.get(client) ?? 0) + 1);
    if (createdAt !== this.createdAt.text) this.createdAt = { text: createdAt, ms: Date.parse(createdAt) };
    this.endToEnd.observe(Math.max(0, this.now - this.createdAt.ms) / 1000, outcome);
  }

  private addEnds(): void {
    for (const [outcome, byClient] of this.endsUnadded) {
      for (const [client, count] of byClient)
        this.finished.inc({ outcome, ...this.clientLabel(client) }, count);
    }
    this.endsUnadded.clear();
  }

  /** Jobs ended by a sweep, whose clients and times the sweep does not read. */
  jobsEnded(outcome: FinishedOutcome, count: number): void {
    if (count > 0) this.finished.inc({ outcome }, count);
  }

  pipelineRun(outcome: RunResult, seconds: number): void {
    this.runsUnadded.set(outcome, (this.runsUnadded.get(outcome) ?? 0) + 1);
    this.runTime.observe(seconds, outcome);
  }

  private addRuns(): void {
    for (const [outcome, count] of this.runsUnadded) this.runs.inc({ outcome }, count);
    this.runsUnadded.clear();
  }

  queueWaited(seconds: number): void {
    this.queueWait.observe(Math.max(0, seconds));
  }

  rescued(count: number): void {
    if (count > 0) this.rescues.inc(count);
  }

  /** A delivery attempt; `finishedAt` (the job's end, ISO 8601) times a delivery. */
  callbackAttempted(result: CallbackResult, finishedAt: string | null): void {
    this.callbackAttempts.inc({ result });
    if (result === 'delivered' && finishedAt !== null)
      this.callbackLatency.observe(Math.max(0, this.now - Date.parse(finishedAt)) / 1000);
  }

  /** The exposition, in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
