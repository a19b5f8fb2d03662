/**
 * The settings of the parts that run jobs (ix start, ix worker): the worker, its pipeline, callback
 * delivery and retention, declared as every setting is (see SETTINGS in settings.ts), which spreads
 * them into its groups in this order.
 */
import {
  booleanSetting,
  callbackSecrets,
  DEFAULT_RETRY_SCHEDULE_SECONDS,
  durationSetting,
  httpUrl,
  integerSetting,
  optionalSetting,
  type PipelineChoice,
  pipelineChoice,
  type Setting,
  secondsList,
  setting,
} from './parsers.js';

export const JOB_SETTINGS = {
  worker: {
    concurrency: integerSetting({
      name: 'IX_WORKER_CONCURRENCY',
      default: 10,
      min: 1,
      max: 10_000,
      doc: 'Jobs a worker runs at once.',
    }),
    prefetch: integerSetting({
      name: 'IX_WORKER_PREFETCH',
      default: 0,
      min: 0,
      max: 100_000,
      doc: 'Extra jobs claimed ahead into a local buffer: ~1000 for sub-millisecond pipelines, 0 for slow.',
    }),
    pollIntervalMs: integerSetting({
      name: 'IX_WORKER_POLL_INTERVAL_MS',
      default: 2_000,
      min: 10,
      max: 3_600_000,
      doc: 'Fallback poll when no NOTIFY arrives.',
    }),
    batchIntervalMs: integerSetting({
      name: 'IX_WORKER_BATCH_INTERVAL_MS',
      default: 5,
      min: 0,
      max: 10_000,
      doc: 'Once the queue runs dry, the workers together claim, and write outcomes, about once per this interval (each worker waits it × the live workers), so more workers mean bigger batches, not more statements; 0: no wait.',
    }),
    sweepIntervalSeconds: integerSetting({
      name: 'IX_SWEEP_INTERVAL_SECONDS',
      default: 10,
      min: 1,
      max: 86_400,
      doc: 'How often each worker looks for orphaned jobs.',
    }),
    heartbeatIntervalSeconds: integerSetting({
      name: 'IX_HEARTBEAT_INTERVAL_SECONDS',
      default: 5,
      min: 1,
      max: 3_600,
      doc: 'How often a worker renews its lease on its jobs.',
    }),
    heartbeatTimeoutSeconds: integerSetting({
      name: 'IX_HEARTBEAT_TIMEOUT_SECONDS',
      default: 30,
      min: 2,
      max: 86_400,
      doc: 'A worker silent this long has its jobs rescued (at least twice the interval).',
    }),
    maxAttempts: integerSetting({
      name: 'IX_MAX_ATTEMPTS',
      default: 3,
      min: 1,
      max: 1_000,
      doc: 'Runs a job may take unless its submission asks otherwise: each retried failure and each rescue from a dead worker counts one.',
    }),
    retryBaseSeconds: integerSetting({
      name: 'IX_RETRY_BASE_SECONDS',
      default: 5,
      min: 1,
      max: 86_400,
      doc: 'Backoff before the n-th retry: a random time up to base × 2^(n−1) (full jitter).',
    }),
    retryMaxSeconds: integerSetting({
      name: 'IX_RETRY_MAX_SECONDS',
      default: 3_600,
      min: 1,
      max: 2_592_000,
      doc: 'The longest a retry waits, `Retry-After` included.',
    }),
    shutdownGraceSeconds: integerSetting({
      name: 'IX_SHUTDOWN_GRACE_SECONDS',
      default: 30,
      min: 0,
      max: 86_400,
      doc: 'On SIGTERM, how long in-flight jobs may finish before they are put back.',
    }),
    maxHeldBytes: integerSetting({
      name: 'IX_WORKER_MAX_HELD_BYTES',
      default: 67_108_864,
      min: 1_024,
      max: 17_179_869_184,
      doc: 'A worker claims no more once the inputs it holds add up to this (their stored size).',
    }),
  },
  pipeline: {
    pipeline: setting<PipelineChoice>({
      name: 'IX_PIPELINE',
      default: { kind: 'echo' },
      defaultText: 'echo',
      parse: pipelineChoice,
      doc: '`echo`, `http`, or a path to a JS or TS module whose default export is a pipeline.',
    }),
    pipelineUrl: optionalSetting(
      {
        name: 'IX_PIPELINE_URL',
        doc: 'Where the `http` pipeline POSTs each request (required with `http`).',
      },
      httpUrl,
    ),
    requestTimeoutSeconds: integerSetting({
      name: 'IX_PIPELINE_REQUEST_TIMEOUT_SECONDS',
      default: 300,
      min: 1,
      max: 86_400,
      doc: 'A pipeline run longer than this is aborted and the job ends `error`.',
    }),
    // PostgreSQL keeps at most ~255 MB in one jsonb value; well below that, one result this
    // large is already a memory hazard for the worker holding it.
    maxResultBytes: integerSetting({
      name: 'IX_PIPELINE_MAX_RESULT_BYTES',
      default: 16_777_216,
      min: 1_024,
      max: 134_217_728,
      doc: 'A result or error longer than this as JSON ends its job `error`; also caps `http` answers.',
    }),
  },
  callbacks: {
    secrets: setting<string[]>({
      name: 'IX_CALLBACK_SECRET',
      default: [],
      defaultText: null,
      parse: callbackSecrets,
      doc: '`whsec_…` signing secret; two, space-separated, while rotating.',
    }),
    retryScheduleSeconds: setting({
      name: 'IX_CALLBACK_RETRY_SCHEDULE',
      default: DEFAULT_RETRY_SCHEDULE_SECONDS,
      defaultText: DEFAULT_RETRY_SCHEDULE_SECONDS.join(','),
      parse: secondsList,
      doc: 'Seconds before each delivery attempt.',
    }),
    timeoutSeconds: integerSetting({
      name: 'IX_CALLBACK_TIMEOUT_SECONDS',
      default: 15,
      min: 1,
      max: 3_600,
      doc: 'Per-attempt timeout of a callback delivery.',
    }),
    allowPrivate: booleanSetting({
      name: 'IX_CALLBACK_ALLOW_PRIVATE',
      default: false,
      doc: 'Allow callbacks to loopback and private addresses (tests, private networks).',
    }),
  },
  retention: {
    done: durationSetting({
      name: 'IX_RETAIN_DONE',
      default: 7 * 86_400,
      maxDays: 36_500,
      doc: 'How long a `done` job is kept after it finished, then pruned to a tombstone (`30d`, `12h`, …; `off`: forever).',
    }),
    error: durationSetting({
      name: 'IX_RETAIN_ERROR',
      default: 30 * 86_400,
      maxDays: 36_500,
      doc: 'How long an `error` job is kept after it finished (`off`: forever).',
    }),
    cancelled: durationSetting({
      name: 'IX_RETAIN_CANCELLED',
      default: 7 * 86_400,
      maxDays: 36_500,
      doc: 'How long a `cancelled` job is kept after it finished (`off`: forever).',
    }),
    tombstones: durationSetting({
      name: 'IX_RETAIN_TOMBSTONES',
      default: 30 * 86_400,
      maxDays: 36_500,
      doc: 'How long a pruned job’s key stays taken (410 `gone`), from the prune; then it may be submitted anew (`off`: forever).',
    }),
    pruneIntervalSeconds: integerSetting({
      name: 'IX_PRUNE_INTERVAL_SECONDS',
      default: 60,
      min: 1,
      max: 86_400,
      doc: 'How often a worker prunes (one process at a time does).',
    }),
    pruneBatchSize: integerSetting({
      name: 'IX_PRUNE_BATCH_SIZE',
      default: 1_000,
      min: 1,
      max: 100_000,
      doc: 'Jobs pruned per statement; each statement is a short transaction of its own.',
    }),
    pruneDutyPercent: integerSetting({
      name: 'IX_PRUNE_DUTY_PERCENT',
      default: 20,
      min: 1,
      max: 100,
      doc: 'Share of its time a prune pass spends in statements; it sleeps the rest, leaving the CPU to the hot path.',
    }),
  },
} satisfies Record<string, Record<string, Setting<unknown>>>;
