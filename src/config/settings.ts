/**
 * SETTINGS: every IX_* variable ix and its test suite read, each declared once (variable, parser,
 * default, bounds, a one-line doc), from which loadConfig, `ix help settings` and the README's
 * configuration table all come.
 */
import { JOB_SETTINGS } from './job-settings.js';
import {
  apiKeys,
  booleanSetting,
  booleanText,
  ConfigError,
  choiceSetting,
  DB_POOLERS,
  httpUrl,
  integerSetting,
  LOG_LEVELS,
  oneOf,
  optionalSetting,
  positiveNumber,
  postgresUrl,
  type Setting,
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
  ...JOB_SETTINGS,
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
