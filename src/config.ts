/**
 * Every setting ix reads, read and validated once at start-up from `IX_*` environment variables:
 * loadConfig gives the typed Config. Each variable is declared once, in SETTINGS
 * (src/config/settings.ts), from which `ix help settings` and the README's table come too. A bad
 * value throws a ConfigError naming the variable; nothing here runs on import.
 */
import { readFileSync } from 'node:fs';
import {
  ConfigError,
  type DbPooler,
  type Env,
  type LogLevel,
  type PipelineChoice,
  type PipelineSource,
  type ReadFile,
  type Setting,
} from './config/parsers.js';
import { SETTINGS } from './config/settings.js';

/**
 * What loadConfig gives. Each field is the value of the SETTINGS entry of the same name, whose doc
 * says what it means; `worker.pipeline` joins IX_PIPELINE and IX_PIPELINE_URL.
 */
export interface Config {
  postgresUrl: string | null;
  dataDir: string;
  dbPoolSize: number;
  dbStatementTimeoutSeconds: number;
  dbPooler: DbPooler;
  /** IX_DB_PREPARED_STATEMENTS, its default resolved against IX_DB_POOLER. */
  dbPreparedStatements: boolean;
  listenUrl: string | null;
  logLevel: LogLevel;
  api: {
    host: string;
    port: number;
    /** client id → key; empty means open access (loopback only). */
    apiKeys: Map<string, string>;
    /** operator name → key; empty: only open access (no keys at all) reaches operator endpoints. */
    adminKeys: Map<string, string>;
    maxBodyBytes: number;
    deadlineSeconds: number;
    maxPendingSubmits: number;
    maxAttemptsCap: number;
    maxWaitSeconds: number;
    eventsHeartbeatSeconds: number;
    watchPollIntervalMs: number;
  };
  /** Limits and fairness between clients: the server-wide defaults an `ix clients` entry overrides. */
  clients: {
    maxRunning: number | null;
    maxPending: number | null;
    /** Submits a second, per API process. */
    rate: number | null;
    rateBurst: number | null;
    refreshSeconds: number;
  };
  metrics: {
    /** `ix worker`'s own metrics port; null: none. */
    port: number | null;
    clientLabels: boolean;
  };
  worker: {
    concurrency: number;
    prefetch: number;
    pollIntervalMs: number;
    /** IX_WORKER_BATCH_INTERVAL_MS: the fleet's spacing of claims and outcome writes under a trickle. */
    batchIntervalMs: number;
    pipeline: PipelineSource;
    requestTimeoutSeconds: number;
    sweepIntervalSeconds: number;
    heartbeatIntervalSeconds: number;
    heartbeatTimeoutSeconds: number;
    maxAttempts: number;
    /** Seconds; tests set a fraction so backoffs take milliseconds. */
    retryBaseSeconds: number;
    retryMaxSeconds: number;
    shutdownGraceSeconds: number;
    maxResultBytes: number;
    maxHeldBytes: number;
  };
  client: {
    apiUrl: string | null;
    apiKey: string | null;
  };
  retention: {
    /** Seconds each final status is kept after finishing, and tombstones after the prune; null: forever. */
    done: number | null;
    error: number | null;
    cancelled: number | null;
    tombstones: number | null;
    pruneIntervalSeconds: number;
    pruneBatchSize: number;
    pruneDutyPercent: number;
  };
  callbacks: {
    /** `whsec_…` secrets, newest first. */
    secrets: string[];
    retryScheduleSeconds: number[];
    timeoutSeconds: number;
    allowPrivate: boolean;
  };
}

/**
 * The value of `setting` in `env`: its default when the variable is unset or blank. A copy of the
 * default, so that no config can change another's (API keys are a Map, schedules arrays).
 */
export function readSetting<T>(setting: Setting<T>, env: Env, readFile: ReadFile = readTextFile): T {
  const text = env[setting.name]?.trim();
  return text === undefined || text === '' ? structuredClone(setting.default) : setting.parse(text, readFile);
}

export interface LoadConfigOptions {
  readFile?: ReadFile;
}

/** Every setting of SETTINGS but the test suite's, read from `env` and checked against one another. */
export function loadConfig(env: Env = process.env, options: LoadConfigOptions = {}): Config {
  const read = <T>(setting: Setting<T>): T => readSetting(setting, env, options.readFile);
  const { database, logging, api, clients, metrics, worker, pipeline, callbacks, client, retention } =
    SETTINGS;

  const heartbeatIntervalSeconds = read(worker.heartbeatIntervalSeconds);
  const heartbeatTimeoutSeconds = read(worker.heartbeatTimeoutSeconds);
  if (heartbeatTimeoutSeconds < 2 * heartbeatIntervalSeconds) {
    throw new ConfigError(
      worker.heartbeatTimeoutSeconds.name,
      `must be at least twice ${worker.heartbeatIntervalSeconds.name} (${heartbeatIntervalSeconds}), so one late beat does not rescue live jobs`,
    );
  }

  const apiKeys = read(api.apiKeys);
  const adminKeys = read(api.adminKeys);
  const clientKeys = new Set(apiKeys.values());
  for (const [name, key] of adminKeys) {
    if (clientKeys.has(key))
      throw new ConfigError(api.adminKeys.name, `the key of "${name}" is also a key of ${api.apiKeys.name}`);
  }

  const dbPooler = read(database.dbPooler);
  return {
    postgresUrl: read(database.postgresUrl),
    dataDir: read(database.dataDir),
    dbPoolSize: read(database.dbPoolSize),
    dbStatementTimeoutSeconds: read(database.dbStatementTimeoutSeconds),
    dbPooler,
    // A transaction pooler before PgBouncer 1.21 hands a connection's next transaction to
    // another server connection, where its named statement does not exist (or is another's).
    dbPreparedStatements: read(database.dbPreparedStatements) ?? dbPooler !== 'transaction',
    listenUrl: read(database.listenUrl),
    logLevel: read(logging.logLevel),
    api: {
      host: read(api.host),
      port: read(api.port),
      apiKeys,
      adminKeys,
      maxBodyBytes: read(api.maxBodyBytes),
      deadlineSeconds: read(api.deadlineSeconds),
      maxPendingSubmits: read(api.maxPendingSubmits),
      maxAttemptsCap: read(api.maxAttemptsCap),
      maxWaitSeconds: read(api.maxWaitSeconds),
      eventsHeartbeatSeconds: read(api.eventsHeartbeatSeconds),
      watchPollIntervalMs: read(api.watchPollIntervalMs),
    },
    clients: {
      maxRunning: read(clients.maxRunning),
      maxPending: read(clients.maxPending),
      rate: read(clients.rate),
      rateBurst: read(clients.rateBurst),
      refreshSeconds: read(clients.refreshSeconds),
    },
    metrics: {
      port: read(metrics.metricsPort),
      clientLabels: read(metrics.clientLabels),
    },
    worker: {
      concurrency: read(worker.concurrency),
      prefetch: read(worker.prefetch),
      pollIntervalMs: read(worker.pollIntervalMs),
      batchIntervalMs: read(worker.batchIntervalMs),
      pipeline: pipelineSource(read(pipeline.pipeline), read(pipeline.pipelineUrl)),
      requestTimeoutSeconds: read(pipeline.requestTimeoutSeconds),
      sweepIntervalSeconds: read(worker.sweepIntervalSeconds),
      heartbeatIntervalSeconds,
      heartbeatTimeoutSeconds,
      maxAttempts: read(worker.maxAttempts),
      retryBaseSeconds: read(worker.retryBaseSeconds),
      retryMaxSeconds: read(worker.retryMaxSeconds),
      shutdownGraceSeconds: read(worker.shutdownGraceSeconds),
      maxResultBytes: read(pipeline.maxResultBytes),
      maxHeldBytes: read(worker.maxHeldBytes),
    },
    client: {
      apiUrl: read(client.apiUrl),
      apiKey: read(client.apiKey),
    },
    retention: {
      done: read(retention.done),
      error: read(retention.error),
      cancelled: read(retention.cancelled),
      tombstones: read(retention.tombstones),
      pruneIntervalSeconds: read(retention.pruneIntervalSeconds),
      pruneBatchSize: read(retention.pruneBatchSize),
      pruneDutyPercent: read(retention.pruneDutyPercent),
    },
    callbacks: {
      secrets: read(callbacks.secrets),
      retryScheduleSeconds: read(callbacks.retryScheduleSeconds),
      timeoutSeconds: read(callbacks.timeoutSeconds),
      allowPrivate: read(callbacks.allowPrivate),
    },
  };
}

function pipelineSource(choice: PipelineChoice, url: string | null): PipelineSource {
  if (choice.kind !== 'http') return choice;
  const { pipeline, pipelineUrl } = SETTINGS.pipeline;
  if (url === null) throw new ConfigError(pipelineUrl.name, `is required when ${pipeline.name}=http`);
  return { kind: 'http', url };
}

function readTextFile(path: string): string {
  return readFileSync(path, 'utf8');
}

export {
  ConfigError,
  durationText,
  httpUrl,
  type PipelineSource,
  parseApiKeys,
  type ReadFile,
  type Setting,
} from './config/parsers.js';
export {
  documentedDefault,
  documentedRange,
  documentedSettings,
  SETTING_GROUP_TITLES,
  SETTINGS,
} from './config/settings.js';
