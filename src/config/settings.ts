/**
 * SETTINGS: every IX_* variable ix and its test suite read, each declared once (variable, parser,
 * default, bounds, a one-line doc), from which loadConfig, `ix help settings` and the README's
 * configuration table all come.
 */
import {
  apiKeys,
  booleanSetting,
  booleanText,
  ConfigError,
  callbackSecrets,
  choiceSetting,
  DB_POOLERS,
  DEFAULT_RETRY_SCHEDULE_SECONDS,
  durationSetting,
  httpUrl,
  integerSetting,
  LOG_LEVELS,
  oneOf,
  optionalSetting,
  type PipelineChoice,
  pipelineChoice,
  positiveNumber,
  postgresUrl,
  type Setting,
  secondsList,
  setting,
  textSetting,
  wholeNumber,
} from './parsers.js';

/**
 * Every variable ix and its test suite read, by group, in the order the docs list them. The keys
 * are the names of the values in Config where there is one.
 */
export const SETTINGS = {
  database: {
    postgresUrl: optionalSetting(
      {
        name: 'IX_POSTGRES_URL',
        doc: 'PostgreSQL connection string. Unset: `ix start` runs an embedded PostgreSQL in `IX_DATA_DIR`.',
      },
      postgresUrl,
    ),
    dataDir: textSetting({
      name: 'IX_DATA_DIR',
      default: '.ix-data',
      doc: 'Data directory of the embedded PostgreSQL.',
    }),
    dbPoolSize: integerSetting({
      name: 'IX_DB_POOL_SIZE',
      default: 10,
      min: 2,
      max: 1_000,
      doc: 'Connections per process.',
    }),
    dbStatementTimeoutSeconds: integerSetting({
      name: 'IX_DB_STATEMENT_TIMEOUT_SECONDS',
      default: 30,
      min: 1,
      max: 86_400,
      doc: 'PostgreSQL cancels a statement of ix running longer (migrations excepted). Behind a pooler, set it on the server (README, "Behind PgBouncer").',
    }),
    dbPooler: choiceSetting({
      name: 'IX_DB_POOLER',
      choices: DB_POOLERS,
      default: 'none',
      doc: '`transaction`: `IX_POSTGRES_URL` is PgBouncer in transaction mode. No startup parameters, prepared statements off, LISTEN only on `IX_LISTEN_URL`.',
    }),
    dbPreparedStatements: optionalSetting(
      {
        name: 'IX_DB_PREPARED_STATEMENTS',
        doc: 'Named prepared statements, planned once per connection. Unset: true, false with `IX_DB_POOLER=transaction` (PgBouncer 1.21+ can take them).',
      },
      booleanText,
    ),
    listenUrl: optionalSetting(
      {
        name: 'IX_LISTEN_URL',
        doc: 'Direct connection string for LISTEN (waking workers and waiters). Unset: `IX_POSTGRES_URL`; none with `IX_DB_POOLER=transaction` (a warning, polls).',
      },
      postgresUrl,
    ),
  },
  logging: {
    logLevel: choiceSetting({
      name: 'IX_LOG_LEVEL',
      choices: LOG_LEVELS,
      default: 'info',
      doc: `The least severe level logged: ${oneOf(LOG_LEVELS)}.`,
    }),
  },
  api: {
    host: textSetting({ name: 'IX_HOST', default: '127.0.0.1', doc: 'Address the API listens on.' }),
    port: integerSetting({
      name: 'IX_PORT',
      default: 8080,
      min: 0,
      max: 65_535,
      doc: 'Port the API listens on.',
    }),
    apiKeys: setting({
      name: 'IX_API_KEYS',
      default: new Map<string, string>(),
      defaultText: null,
      parse: apiKeys,
      doc: '`client=key,…` or `@file` (one `client=key` a line). Unset: open access, loopback only.',
    }),
    adminKeys: setting({
      name: 'IX_ADMIN_KEYS',
      default: new Map<string, string>(),
      defaultText: null,
      parse: apiKeys,
      doc: 'Operator keys, `name=key,…` or `@file`: `/admin/*`, `/metrics` and the dashboard, over every client. Unset with `IX_API_KEYS` set: those are closed.',
    }),
    // At most 64 MiB: a body is held whole, as text, parsed, and again as the insert's JSON, so
    // this bounds what one client can make ix hold.
    maxBodyBytes: integerSetting({
      name: 'IX_MAX_BODY_BYTES',
      default: 1_048_576,
      min: 1_024,
      max: 67_108_864,
      doc: 'Largest request body accepted (413 above).',
    }),
    deadlineSeconds: integerSetting({
      name: 'IX_API_DEADLINE_SECONDS',
      default: 5,
      min: 1,
      max: 300,
      doc: 'Every API request is answered within this long, whatever the database does (503 past it).',
    }),
    maxPendingSubmits: integerSetting({
      name: 'IX_API_MAX_PENDING_SUBMITS',
      default: 10_000,
      min: 1,
      max: 1_000_000,
      doc: 'Submissions waiting for their insert at most; more are refused at once (503).',
    }),
    maxAttemptsCap: integerSetting({
      name: 'IX_MAX_ATTEMPTS_CAP',
      default: 25,
      min: 1,
      max: 1_000,
      doc: 'The largest `max_attempts` a submission may ask for (400 above).',
    }),
    maxWaitSeconds: integerSetting({
      name: 'IX_MAX_WAIT_SECONDS',
      default: 60,
      min: 1,
      max: 3_600,
      doc: 'Longest a `wait` (long-poll, or POST /jobs?wait) holds a request; a larger `wait` is cut to it.',
    }),
    eventsHeartbeatSeconds: integerSetting({
      name: 'IX_EVENTS_HEARTBEAT_SECONDS',
      default: 15,
      min: 1,
      max: 300,
      doc: 'A job event stream sends a comment this often, so proxies do not close it as idle.',
    }),
    watchPollIntervalMs: integerSetting({
      name: 'IX_WATCH_POLL_INTERVAL_MS',
      default: 1_000,
      min: 10,
      max: 60_000,
      doc: 'When job change notifications do not arrive (a transaction pooler), one shared poll serves every waiter this often.',
    }),
  },
  clients: {
    maxRunning: optionalSetting(
      {
        name: 'IX_CLIENT_MAX_RUNNING',
        doc: "A client's jobs claimed at once (running, or buffered by a worker), across all workers, unless its `ix clients` entry says otherwise. Unset: no limit.",
      },
      wholeNumber(1, 1_000_000),
    ),
    maxPending: optionalSetting(
      {
        name: 'IX_CLIENT_MAX_PENDING',
        doc: "A client's jobs waiting to run at most, unless its `ix clients` entry says otherwise; a submit past it answers 429 `too_many_pending`. Unset: no limit.",
      },
      wholeNumber(1, 1_000_000_000),
    ),
    rate: optionalSetting(
      {
        name: 'IX_CLIENT_RATE',
        doc: 'Submits a second a client may make to each API process, unless its `ix clients` entry says otherwise; past it, 429 `rate_limited` with `Retry-After`. Unset: no limit.',
      },
      positiveNumber(1_000_000),
    ),
    rateBurst: optionalSetting(
      {
        name: 'IX_CLIENT_RATE_BURST',
        doc: "Submits a client may make at once under a rate limit (the token bucket's size). Unset: one second's worth, at least 1.",
      },
      wholeNumber(1, 1_000_000),
    ),
    refreshSeconds: integerSetting({
      name: 'IX_CLIENTS_REFRESH_SECONDS',
      default: 30,
      min: 1,
      max: 3_600,
      doc: 'Each API process re-reads `ix clients` this often, besides at once on every change it is told of, in case a notification was lost.',
    }),
  },
  metrics: {
    metricsPort: optionalSetting(
      {
        name: 'IX_METRICS_PORT',
        doc: '`ix worker` serves `/metrics` on this port of `IX_HOST` (`ix start` and `ix api` serve it on `IX_PORT`). Unset: not served.',
      },
      (name, text) => {
        const port = Number(text);
        if (!/^\d+$/.test(text) || port < 1 || port > 65_535)
          throw new ConfigError(name, `expected a port from 1 to 65535, got "${text}"`);
        return port;
      },
    ),
    clientLabels: booleanSetting({
      name: 'IX_METRICS_CLIENT_LABELS',
      default: false,
      doc: 'Label submitted and finished jobs by client id in `/metrics` (one series per client: only with few clients).',
    }),
  },
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
  client: {
    apiUrl: optionalSetting(
      {
        name: 'IX_API_URL',
        doc: '`ix submit`, `ix get` and `ix cancel` talk to this ix API instead of the database (same as `--url`).',
      },
      httpUrl,
    ),
    apiKey: optionalSetting(
      {
        name: 'IX_API_KEY',
        doc: 'The key `ix submit`, `ix get` and `ix cancel` send to that API (one of its `IX_API_KEYS`).',
      },
      (_name, text) => text,
    ),
  },
  tests: {
    databaseUrl: optionalSetting(
      {
        name: 'IX_TEST_DATABASE_URL',
        doc: 'Server the test suite runs on (tests only); unset: `IX_POSTGRES_URL`, else embedded.',
      },
      postgresUrl,
    ),
    logLevel: choiceSetting({
      name: 'IX_TEST_LOG_LEVEL',
      choices: LOG_LEVELS,
      default: 'silent',
      doc: 'What the workers and pipelines tests run in-process log (tests only), e.g. `debug`.',
    }),
  },
} satisfies Record<string, Record<string, Setting<unknown>>>;

/** How `ix help settings` heads each group of SETTINGS. */
export const SETTING_GROUP_TITLES: Record<keyof typeof SETTINGS, string> = {
  database: 'Database',
  logging: 'Logs',
  api: 'API (ix start, ix api)',
  clients: 'Clients: limits and fairness (ix start, ix api, ix worker)',
  metrics: 'Metrics',
  worker: 'Worker (ix start, ix worker)',
  pipeline: 'Pipeline (ix start, ix worker)',
  callbacks: 'Callbacks (ix start, ix worker)',
  retention: 'Retention (ix start, ix worker, ix prune)',
  client: 'ix submit and ix get',
  tests: 'Test suite (npm test)',
};

/** SETTINGS as the docs list them: group by group, each under its title. */
export function documentedSettings(): { title: string; settings: Setting<unknown>[] }[] {
  return (Object.keys(SETTINGS) as (keyof typeof SETTINGS)[]).map((group) => ({
    title: SETTING_GROUP_TITLES[group],
    settings: Object.values(SETTINGS[group]),
  }));
}

/** A setting's default as the docs show it: as one would write it in the variable, or unset. */
export function documentedDefault(setting: Setting<unknown>, quote = (text: string) => text): string {
  return setting.defaultText === null ? 'unset' : quote(setting.defaultText);
}

/** A number's bounds as the docs show them (`2 to 1000`); empty for other settings. */
export function documentedRange(setting: Setting<unknown>): string {
  return setting.range === null ? '' : `${setting.range.min} to ${setting.range.max}`;
}
