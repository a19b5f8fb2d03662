/**
 * Every setting ix reads, from `IX_*` environment variables. SETTINGS declares each one once, in its
 * group: variable, parser, default, bounds and a one-line doc; loadConfig reads and validates them
 * all at start-up, and `ix help settings` and the README's configuration table are rendered from
 * it. A bad value throws a ConfigError naming the variable; nothing here runs on import.
 */
import { readFileSync } from 'node:fs';
import { LIMITS } from './contracts/index.js';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads the file an `@file` value names; injected so tests need no files. */
export type ReadFile = (path: string) => string;

/** One `IX_*` variable: everything ix, its help and its README know of it. */
export interface Setting<T> {
  readonly name: string;
  /** One line, Markdown, for the README and `ix help settings`. */
  readonly doc: string;
  /** The value when the variable is unset or blank. */
  readonly default: T;
  /** The default as one would write it in the variable; null where unset means "none". */
  readonly defaultText: string | null;
  /** The smallest and largest value a number may take. */
  readonly range: { readonly min: number; readonly max: number } | null;
  /** The variable's value, trimmed and not blank; a ConfigError naming the variable when it is bad. */
  parse(text: string, readFile: ReadFile): T;
}

interface Declaration {
  name: string;
  doc: string;
}

/** Turns the variable's text into a value, or throws a ConfigError naming it (`name`). */
type Parser<T> = (name: string, text: string, readFile: ReadFile) => T;

function setting<T>(
  declared: Declaration & {
    default: T;
    defaultText: string | null;
    range?: Setting<T>['range'];
    parse: Parser<T>;
  },
): Setting<T> {
  const { name, doc, parse } = declared;
  return {
    name,
    doc,
    default: declared.default,
    defaultText: declared.defaultText,
    range: declared.range ?? null,
    parse: (text, readFile) => parse(name, text, readFile),
  };
}

function integerSetting(
  declared: Declaration & { default: number; min: number; max: number },
): Setting<number> {
  const { min, max } = declared;
  return setting({
    ...declared,
    defaultText: String(declared.default),
    range: { min, max },
    parse(name, text) {
      if (!/^-?\d+$/.test(text)) throw new ConfigError(name, `expected a whole number, got "${text}"`);
      const value = Number(text);
      if (value < min || value > max)
        throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
      return value;
    },
  });
}

function booleanSetting(declared: Declaration & { default: boolean }): Setting<boolean> {
  return setting({
    ...declared,
    defaultText: String(declared.default),
    parse(name, text) {
      const value = text.toLowerCase();
      if (['true', '1', 'yes'].includes(value)) return true;
      if (['false', '0', 'no'].includes(value)) return false;
      throw new ConfigError(name, `expected true or false, got "${value}"`);
    },
  });
}

function choiceSetting<C extends string>(
  declared: Declaration & { choices: readonly C[]; default: NoInfer<C> },
): Setting<C> {
  const { choices } = declared;
  return setting({
    ...declared,
    defaultText: declared.default,
    parse(name, text) {
      const choice = choices.find((c) => c === text);
      if (choice === undefined)
        throw new ConfigError(name, `expected one of ${choices.join(', ')}, got "${text}"`);
      return choice;
    },
  });
}

function textSetting(declared: Declaration & { default: string }): Setting<string> {
  return setting({ ...declared, defaultText: declared.default, parse: (_name, text) => text });
}

/** A setting that is off, or absent, unless its variable is set. */
function optionalSetting<T>(
  declared: Declaration,
  parse: (name: string, text: string) => T,
): Setting<T | null> {
  return setting<T | null>({ ...declared, default: null, defaultText: null, parse });
}

export function httpUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(name, `not a valid URL: "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must be an http(s) URL, got "${url.protocol}"`);
  }
  return value;
}

function postgresUrl(name: string, value: string): string {
  if (!/^postgres(ql)?:\/\//.test(value)) {
    throw new ConfigError(name, 'expected a postgres:// or postgresql:// connection string');
  }
  return value;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** `a`, `b` or `c`: choices as the docs list them. */
function oneOf(choices: readonly string[]): string {
  const quoted = choices.map((choice) => `\`${choice}\``);
  return `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** Where a worker's pipeline comes from; an http pipeline always has its URL. */
export type PipelineSource =
  | { kind: 'echo' }
  | { kind: 'http'; url: string }
  | { kind: 'module'; path: string };

/** What IX_PIPELINE alone says: an http pipeline's URL is IX_PIPELINE_URL's to give. */
type PipelineChoice = Exclude<PipelineSource, { kind: 'http' }> | { kind: 'http' };

function pipelineChoice(name: string, text: string): PipelineChoice {
  if (text === 'echo' || text === 'http') return { kind: text };
  // Users' own pipelines are module paths; anything else is a typo worth stopping for.
  if (/\.(m?js|ts|mts)$/.test(text) || text.startsWith('.') || text.startsWith('/'))
    return { kind: 'module', path: text };
  throw new ConfigError(name, `expected echo, http or a path to a .js/.ts module, got "${text}"`);
}

/** `acme=key1,beta=key2`, or `@path` to a file with one `client=key` per line (read by the caller). */
export function parseApiKeys(text: string, variable = 'IX_API_KEYS'): Map<string, string> {
  const keys = new Map<string, string>();
  // A key names its client: shared by two, it would authenticate as whichever came first.
  const clientOfKey = new Map<string, string>();
  for (const entry of text.split(/[,\n]/)) {
    const trimmed = entry.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const at = trimmed.indexOf('=');
    const client = trimmed.slice(0, at).trim();
    const key = trimmed.slice(at + 1).trim();
    if (at <= 0 || key === '') throw new ConfigError(variable, 'each entry must be client=key');
    if (client.length > LIMITS.clientId)
      throw new ConfigError(variable, `client id "${client.slice(0, 20)}…" is over ${LIMITS.clientId} chars`);
    if (key.length < 16)
      throw new ConfigError(variable, `the key for client "${client}" is shorter than 16 chars`);
    if (keys.has(client)) throw new ConfigError(variable, `client "${client}" is listed twice`);
    const holder = clientOfKey.get(key);
    if (holder !== undefined)
      throw new ConfigError(
        variable,
        `clients "${holder}" and "${client}" have the same key; give each its own`,
      );
    keys.set(client, key);
    clientOfKey.set(key, client);
  }
  return keys;
}

function apiKeys(name: string, text: string, readFile: ReadFile): Map<string, string> {
  if (!text.startsWith('@')) return parseApiKeys(text, name);
  const path = text.slice(1);
  let contents: string;
  try {
    contents = readFile(path);
  } catch (error) {
    throw new ConfigError(name, `cannot read ${path}: ${(error as Error).message}`);
  }
  return parseApiKeys(contents, name);
}

function callbackSecrets(name: string, text: string): string[] {
  const secrets = text.split(/\s+/);
  if (secrets.length > 2) throw new ConfigError(name, 'holds at most two secrets (while rotating)');
  for (const secret of secrets) {
    const body = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : null;
    if (body === null || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || Buffer.from(body, 'base64').length < 24) {
      throw new ConfigError(name, 'expected whsec_ followed by at least 24 base64-encoded bytes');
    }
  }
  return secrets;
}

function secondsList(name: string, text: string): number[] {
  const delays = text.split(',').map((part) => part.trim());
  if (delays.some((d) => !/^\d+$/.test(d))) {
    throw new ConfigError(name, `expected comma-separated whole seconds like 0,5,300, got "${text}"`);
  }
  return delays.map(Number);
}

const DEFAULT_RETRY_SCHEDULE_SECONDS = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

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
      doc: 'PostgreSQL cancels a statement of ix running longer (migrations excepted).',
    }),
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
      doc: 'A job rescued this many times ends `error` (abandoned) instead of running again.',
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
  client: {
    apiUrl: optionalSetting(
      {
        name: 'IX_API_URL',
        doc: '`ix submit` and `ix get` talk to this ix API instead of the database (same as `--url`).',
      },
      httpUrl,
    ),
    apiKey: optionalSetting(
      {
        name: 'IX_API_KEY',
        doc: 'The key `ix submit` and `ix get` send to that API (one of its `IX_API_KEYS`).',
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
  worker: 'Worker (ix start, ix worker)',
  pipeline: 'Pipeline (ix start, ix worker)',
  callbacks: 'Callbacks (ix start, ix worker)',
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

/**
 * What loadConfig gives. Each field is the value of the SETTINGS entry of the same name, whose doc
 * says what it means; `worker.pipeline` joins IX_PIPELINE and IX_PIPELINE_URL.
 */
export interface Config {
  postgresUrl: string | null;
  dataDir: string;
  dbPoolSize: number;
  dbStatementTimeoutSeconds: number;
  logLevel: LogLevel;
  api: {
    host: string;
    port: number;
    /** client id → key; empty means open access (loopback only). */
    apiKeys: Map<string, string>;
    maxBodyBytes: number;
    deadlineSeconds: number;
    maxPendingSubmits: number;
  };
  worker: {
    concurrency: number;
    prefetch: number;
    pollIntervalMs: number;
    pipeline: PipelineSource;
    requestTimeoutSeconds: number;
    sweepIntervalSeconds: number;
    heartbeatIntervalSeconds: number;
    heartbeatTimeoutSeconds: number;
    maxAttempts: number;
    shutdownGraceSeconds: number;
    maxResultBytes: number;
    maxHeldBytes: number;
  };
  client: {
    apiUrl: string | null;
    apiKey: string | null;
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
  const { database, logging, api, worker, pipeline, callbacks, client } = SETTINGS;

  const heartbeatIntervalSeconds = read(worker.heartbeatIntervalSeconds);
  const heartbeatTimeoutSeconds = read(worker.heartbeatTimeoutSeconds);
  if (heartbeatTimeoutSeconds < 2 * heartbeatIntervalSeconds) {
    throw new ConfigError(
      worker.heartbeatTimeoutSeconds.name,
      `must be at least twice ${worker.heartbeatIntervalSeconds.name} (${heartbeatIntervalSeconds}), so one late beat does not rescue live jobs`,
    );
  }

  return {
    postgresUrl: read(database.postgresUrl),
    dataDir: read(database.dataDir),
    dbPoolSize: read(database.dbPoolSize),
    dbStatementTimeoutSeconds: read(database.dbStatementTimeoutSeconds),
    logLevel: read(logging.logLevel),
    api: {
      host: read(api.host),
      port: read(api.port),
      apiKeys: read(api.apiKeys),
      maxBodyBytes: read(api.maxBodyBytes),
      deadlineSeconds: read(api.deadlineSeconds),
      maxPendingSubmits: read(api.maxPendingSubmits),
    },
    worker: {
      concurrency: read(worker.concurrency),
      prefetch: read(worker.prefetch),
      pollIntervalMs: read(worker.pollIntervalMs),
      pipeline: pipelineSource(read(pipeline.pipeline), read(pipeline.pipelineUrl)),
      requestTimeoutSeconds: read(pipeline.requestTimeoutSeconds),
      sweepIntervalSeconds: read(worker.sweepIntervalSeconds),
      heartbeatIntervalSeconds,
      heartbeatTimeoutSeconds,
      maxAttempts: read(worker.maxAttempts),
      shutdownGraceSeconds: read(worker.shutdownGraceSeconds),
      maxResultBytes: read(pipeline.maxResultBytes),
      maxHeldBytes: read(worker.maxHeldBytes),
    },
    client: {
      apiUrl: read(client.apiUrl),
      apiKey: read(client.apiKey),
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
