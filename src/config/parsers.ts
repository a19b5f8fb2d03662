/**
 * The pieces settings are made of: what a setting is, the builders of each kind (integer, boolean,
 * choice, text, optional), and the parsers of the values that need one. A bad value throws a
 * ConfigError naming the variable.
 */
import { LIMITS } from '../contracts/index.js';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

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

export interface Declaration {
  name: string;
  doc: string;
}

/** Turns the variable's text into a value, or throws a ConfigError naming it (`name`). */
export type Parser<T> = (name: string, text: string, readFile: ReadFile) => T;

export function setting<T>(
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

export function integerSetting(
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

export function booleanSetting(declared: Declaration & { default: boolean }): Setting<boolean> {
  return setting({
    ...declared,
    defaultText: String(declared.default),
    parse: booleanText,
  });
}

/** true/1/yes or false/0/no, any case: a boolean setting's text, for optional ones too. */
export function booleanText(name: string, text: string): boolean {
  const value = text.toLowerCase();
  if (['true', '1', 'yes'].includes(value)) return true;
  if (['false', '0', 'no'].includes(value)) return false;
  throw new ConfigError(name, `expected true or false, got "${value}"`);
}

export function choiceSetting<C extends string>(
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

export function textSetting(declared: Declaration & { default: string }): Setting<string> {
  return setting({ ...declared, defaultText: declared.default, parse: (_name, text) => text });
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/**
 * A period such as `30d`, `12h`, `90m` or `45s`, in seconds; `off` or `0`: no end (null).
 * At most `maxDays`.
 */
export function durationSetting(
  declared: Declaration & { default: number | null; maxDays: number },
): Setting<number | null> {
  const defaultText = declared.default === null ? 'off' : durationText(declared.default);
  return setting<number | null>({
    ...declared,
    defaultText,
    parse(name, text) {
      if (text === 'off' || text === '0') return null;
      const match = /^(\d+)([smhd])$/.exec(text);
      if (!match)
        throw new ConfigError(name, `expected a period like 30d, 12h, 90m or 45s, or off, got "${text}"`);
      const seconds = Number(match[1]) * DURATION_UNITS[match[2]!]!;
      if (seconds < 1 || seconds > declared.maxDays * 86_400)
        throw new ConfigError(name, `must be between 1s and ${declared.maxDays}d, or off, got ${text}`);
      return seconds;
    },
  });
}

/** A number of seconds in the largest unit that divides it: 604800 → `7d`. */
export function durationText(seconds: number): string {
  const [unit, size] = Object.entries(DURATION_UNITS)
    .reverse()
    .find(([, size]) => seconds % size === 0) ?? ['s', 1];
  return `${seconds / size}${unit}`;
}

/** A setting that is off, or absent, unless its variable is set. */
export function optionalSetting<T>(
  declared: Declaration,
  parse: (name: string, text: string) => T,
): Setting<T | null> {
  return setting<T | null>({ ...declared, default: null, defaultText: null, parse });
}

/** A parser of a whole number from `min` to `max`, for an optional setting. */
export function wholeNumber(min: number, max: number): (name: string, text: string) => number {
  return (name, text) => {
    if (!/^\d+$/.test(text)) throw new ConfigError(name, `expected a whole number, got "${text}"`);
    const value = Number(text);
    if (value < min || value > max)
      throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    return value;
  };
}

/** A parser of a number above 0, fractions allowed, up to `max`, for an optional setting. */
export function positiveNumber(max: number): (name: string, text: string) => number {
  return (name, text) => {
    const value = Number(text);
    if (!/^\d*\.?\d+$/.test(text) || !(value > 0) || value > max)
      throw new ConfigError(name, `expected a number above 0 and at most ${max}, got "${text}"`);
    return value;
  };
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

export function postgresUrl(name: string, value: string): string {
  if (!/^postgres(ql)?:\/\//.test(value)) {
    throw new ConfigError(name, 'expected a postgres:// or postgresql:// connection string');
  }
  return value;
}

/** What may stand between ix and PostgreSQL (IX_DB_POOLER). */
export const DB_POOLERS = ['none', 'transaction'] as const;
export type DbPooler = (typeof DB_POOLERS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `a`, `b` or `c`: choices as the docs list them. */
export function oneOf(choices: readonly string[]): string {
  const quoted = choices.map((choice) => `\`${choice}\``);
  return `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** Where a worker's pipeline comes from; an http pipeline always has its URL. */
export type PipelineSource =
  | { kind: 'echo' }
  | { kind: 'http'; url: string }
  | { kind: 'module'; path: string };

/** What IX_PIPELINE alone says: an http pipeline's URL is IX_PIPELINE_URL's to give. */
export type PipelineChoice = Exclude<PipelineSource, { kind: 'http' }> | { kind: 'http' };

export function pipelineChoice(name: string, text: string): PipelineChoice {
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

export function apiKeys(name: string, text: string, readFile: ReadFile): Map<string, string> {
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

export function callbackSecrets(name: string, text: string): string[] {
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

export function secondsList(name: string, text: string): number[] {
  const delays = text.split(',').map((part) => part.trim());
  if (delays.some((d) => !/^\d+$/.test(d))) {
    throw new ConfigError(name, `expected comma-separated whole seconds like 0,5,300, got "${text}"`);
  }
  return delays.map(Number);
}

export const DEFAULT_RETRY_SCHEDULE_SECONDS = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
