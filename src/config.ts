/**
 * Every setting ix reads, from `IX_*` environment variables, validated once at start-up.
 * A bad value throws a ConfigError naming the variable; nothing here runs on import.
 * The README's configuration table lists the same variables with the same defaults.
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

export type PipelineKind = 'echo' | 'http' | { module: string };

export interface Config {
  /** PostgreSQL connection string; unset means `ix start` runs an embedded PostgreSQL. */
  postgresUrl: string | null;
  /** Where the embedded PostgreSQL keeps its data. */
  dataDir: string;
  /** Connections per process pool. */
  dbPoolSize: number;
  /** PostgreSQL cancels any statement of ix's connections running longer (migrations excepted). */
  dbStatementTimeoutSeconds: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  api: {
    host: string;
    port: number;
    /** client id → key; empty means open access (loopback only). */
    apiKeys: Map<string, string>;
    maxBodyBytes: number;
    /** Every request is answered within this long, whatever the database does (503 past it). */
    deadlineSeconds: number;
    /** Submissions waiting for their insert at most; more are refused at once with a 503. */
    maxPendingSubmits: number;
  };
  worker: {
    concurrency: number;
    prefetch: number;
    pollIntervalMs: number;
    pipeline: PipelineKind;
    pipelineUrl: string | null;
    requestTimeoutSeconds: number;
    sweepIntervalSeconds: number;
    heartbeatIntervalSeconds: number;
    heartbeatTimeoutSeconds: number;
    maxAttempts: number;
    shutdownGraceSeconds: number;
    /** A result (or error) larger than this as JSON ends its job `error`; also caps what the http pipeline reads. */
    maxResultBytes: number;
    /** The worker claims no more once the inputs it holds add up to this many stored bytes. */
    maxHeldBytes: number;
  };
  /** For `ix submit` and `ix get` over HTTP instead of on the database. */
  client: {
    /** An ix API to talk to, e.g. `http://ix.internal:8080`; null: use IX_POSTGRES_URL. */
    apiUrl: string | null;
    /** Sent as `Authorization: Bearer …`; a key of that server's IX_API_KEYS. */
    apiKey: string | null;
  };
  callbacks: {
    /** `whsec_…` secrets, newest first; two while rotating. */
    secrets: string[];
    retryScheduleSeconds: number[];
    timeoutSeconds: number;
    allowPrivate: boolean;
  };
}

type Env = Record<string, string | undefined>;

function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value)) throw new ConfigError(name, `expected a whole number, got "${value}"`);
  const parsed = Number(value);
  if (parsed < min || parsed > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${parsed}`);
  return parsed;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name)?.toLowerCase();
  if (value === undefined) return fallback;
  if (['true', '1', 'yes'].includes(value)) return true;
  if (['false', '0', 'no'].includes(value)) return false;
  throw new ConfigError(name, `expected true or false, got "${value}"`);
}

function optionalHttpUrl(env: Env, name: string): string | null {
  const value = raw(env, name);
  return value === undefined ? null : httpUrl(name, value);
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

function postgresUrl(env: Env, name: string): string | null {
  const value = raw(env, name);
  if (value === undefined) return null;
  if (!/^postgres(ql)?:\/\//.test(value)) {
    throw new ConfigError(name, 'expected a postgres:// or postgresql:// connection string');
  }
  return value;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function logLevel(env: Env): Config['logLevel'] {
  const value = raw(env, 'IX_LOG_LEVEL') ?? 'info';
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level)
    throw new ConfigError('IX_LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return level;
}

function pipeline(env: Env): PipelineKind {
  const value = raw(env, 'IX_PIPELINE') ?? 'echo';
  if (value === 'echo' || value === 'http') return value;
  // Users' own pipelines are module paths; anything else is a typo worth stopping for.
  if (/\.(m?js|ts|mts)$/.test(value) || value.startsWith('.') || value.startsWith('/'))
    return { module: value };
  throw new ConfigError('IX_PIPELINE', `expected echo, http or a path to a .js/.ts module, got "${value}"`);
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

function callbackSecrets(env: Env): string[] {
  const value = raw(env, 'IX_CALLBACK_SECRET');
  if (value === undefined) return [];
  const secrets = value.split(/\s+/);
  if (secrets.length > 2)
    throw new ConfigError('IX_CALLBACK_SECRET', 'holds at most two secrets (while rotating)');
  for (const secret of secrets) {
    const body = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : null;
    if (body === null || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || Buffer.from(body, 'base64').length < 24) {
      throw new ConfigError(
        'IX_CALLBACK_SECRET',
        'expected whsec_ followed by at least 24 base64-encoded bytes',
      );
    }
  }
  return secrets;
}

function retrySchedule(env: Env): number[] {
  const name = 'IX_CALLBACK_RETRY_SCHEDULE';
  const value = raw(env, name);
  if (value === undefined) return [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
  const delays = value.split(',').map((part) => part.trim());
  if (delays.some((d) => !/^\d+$/.test(d))) {
    throw new ConfigError(name, `expected comma-separated whole seconds like 0,5,300, got "${value}"`);
  }
  return delays.map(Number);
}

export interface LoadConfigOptions {
  /** Reads `@file` forms; injected so tests need no files. */
  readFile?: (path: string) => string;
}

export function loadConfig(env: Env = process.env, options: LoadConfigOptions = {}): Config {
  const keysText = raw(env, 'IX_API_KEYS');
  let apiKeys = new Map<string, string>();
  if (keysText?.startsWith('@')) {
    const path = keysText.slice(1);
    let text: string;
    try {
      text = (options.readFile ?? defaultReadFile)(path);
    } catch (error) {
      throw new ConfigError('IX_API_KEYS', `cannot read ${path}: ${(error as Error).message}`);
    }
    apiKeys = parseApiKeys(text);
  } else if (keysText !== undefined) {
    apiKeys = parseApiKeys(keysText);
  }

  const kind = pipeline(env);
  const pipelineUrl = optionalHttpUrl(env, 'IX_PIPELINE_URL');
  if (kind === 'http' && pipelineUrl === null) {
    throw new ConfigError('IX_PIPELINE_URL', 'is required when IX_PIPELINE=http');
  }

  const requestTimeoutSeconds = integer(env, 'IX_PIPELINE_REQUEST_TIMEOUT_SECONDS', 300, 1, 86_400);
  const heartbeatIntervalSeconds = integer(env, 'IX_HEARTBEAT_INTERVAL_SECONDS', 5, 1, 3_600);
  const heartbeatTimeoutSeconds = integer(env, 'IX_HEARTBEAT_TIMEOUT_SECONDS', 30, 2, 86_400);
  if (heartbeatTimeoutSeconds < 2 * heartbeatIntervalSeconds) {
    throw new ConfigError(
      'IX_HEARTBEAT_TIMEOUT_SECONDS',
      `must be at least twice IX_HEARTBEAT_INTERVAL_SECONDS (${heartbeatIntervalSeconds}), so one late beat does not rescue live jobs`,
    );
  }

  return {
    postgresUrl: postgresUrl(env, 'IX_POSTGRES_URL'),
    dataDir: raw(env, 'IX_DATA_DIR') ?? '.ix-data',
    dbPoolSize: integer(env, 'IX_DB_POOL_SIZE', 10, 2, 1_000),
    dbStatementTimeoutSeconds: integer(env, 'IX_DB_STATEMENT_TIMEOUT_SECONDS', 30, 1, 86_400),
    logLevel: logLevel(env),
    api: {
      host: raw(env, 'IX_HOST') ?? '127.0.0.1',
      port: integer(env, 'IX_PORT', 8080, 0, 65_535),
      apiKeys,
      // At most 64 MiB: a body is held whole, as text, parsed, and again as the insert's JSON, so
      // this bounds what one client can make ix hold.
      maxBodyBytes: integer(env, 'IX_MAX_BODY_BYTES', 1_048_576, 1_024, 67_108_864),
      deadlineSeconds: integer(env, 'IX_API_DEADLINE_SECONDS', 5, 1, 300),
      maxPendingSubmits: integer(env, 'IX_API_MAX_PENDING_SUBMITS', 10_000, 1, 1_000_000),
    },
    worker: {
      concurrency: integer(env, 'IX_WORKER_CONCURRENCY', 10, 1, 10_000),
      prefetch: integer(env, 'IX_WORKER_PREFETCH', 0, 0, 100_000),
      pollIntervalMs: integer(env, 'IX_WORKER_POLL_INTERVAL_MS', 2_000, 10, 3_600_000),
      pipeline: kind,
      pipelineUrl,
      requestTimeoutSeconds,
      sweepIntervalSeconds: integer(env, 'IX_SWEEP_INTERVAL_SECONDS', 10, 1, 86_400),
      heartbeatIntervalSeconds,
      heartbeatTimeoutSeconds,
      maxAttempts: integer(env, 'IX_MAX_ATTEMPTS', 3, 1, 1_000),
      shutdownGraceSeconds: integer(env, 'IX_SHUTDOWN_GRACE_SECONDS', 30, 0, 86_400),
      // PostgreSQL keeps at most ~255 MB in one jsonb value; well below that, one result this
      // large is already a memory hazard for the worker holding it.
      maxResultBytes: integer(env, 'IX_PIPELINE_MAX_RESULT_BYTES', 16_777_216, 1_024, 134_217_728),
      maxHeldBytes: integer(env, 'IX_WORKER_MAX_HELD_BYTES', 67_108_864, 1_024, 17_179_869_184),
    },
    client: {
      apiUrl: optionalHttpUrl(env, 'IX_API_URL'),
      apiKey: raw(env, 'IX_API_KEY') ?? null,
    },
    callbacks: {
      secrets: callbackSecrets(env),
      retryScheduleSeconds: retrySchedule(env),
      timeoutSeconds: integer(env, 'IX_CALLBACK_TIMEOUT_SECONDS', 15, 1, 3_600),
      allowPrivate: boolean(env, 'IX_CALLBACK_ALLOW_PRIVATE', false),
    },
  };
}

function defaultReadFile(path: string): string {
  return readFileSync(path, 'utf8');
}
